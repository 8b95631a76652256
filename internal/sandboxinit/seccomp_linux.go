package sandboxinit

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loadSeccomp installs the program seccompBytes encoded on the calling thread,
// the one that execs the step. It needs CAP_SYS_ADMIN (no_new_privs stays off, as
// in Docker), so it runs before the capabilities are dropped.
func loadSeccomp(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b)%8 != 0 || len(b)/8 > 0xffff {
		return fmt.Errorf("seccomp: a program of %d bytes", len(b))
	}
	filter := make([]unix.SockFilter, len(b)/8)
	for i := range filter {
		e := b[8*i:]
		filter[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(e), Jt: e[2], Jf: e[3], K: binary.LittleEndian.Uint32(e[4:])}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("install the seccomp filter: %w", e)
	}
	runtime.KeepAlive(filter)
	return nil
}

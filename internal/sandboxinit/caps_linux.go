package sandboxinit

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultCaps is Docker's default capability set (CapEff 00000000a80425fb). A step
// running as root gets exactly these; a step running as another user gets none
// effective, with these as its bounding set, so setuid binaries work as in Docker.
const DefaultCaps uint64 = 1<<unix.CAP_CHOWN | 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_FSETID |
	1<<unix.CAP_FOWNER | 1<<unix.CAP_MKNOD | 1<<unix.CAP_NET_RAW | 1<<unix.CAP_SETGID |
	1<<unix.CAP_SETUID | 1<<unix.CAP_SETFCAP | 1<<unix.CAP_SETPCAP | 1<<unix.CAP_NET_BIND_SERVICE |
	1<<unix.CAP_SYS_CHROOT | 1<<unix.CAP_KILL | 1<<unix.CAP_AUDIT_WRITE

// lastCap reads the highest capability the kernel knows; it must be read before
// pivot_root while the host's /proc is still reachable.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read cap_last_cap: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse cap_last_cap: %w", err)
	}
	return n, nil
}

// dropCaps limits the calling thread (the one that will exec) to DefaultCaps:
// bounding set, ambient set cleared, effective and permitted set to the default
// and inheritable empty (Docker has not set inheritable capabilities since
// CVE-2022-24769). no_new_privs stays off, as in Docker.
func dropCaps(last int) error {
	for c := 0; c <= last; c++ {
		if DefaultCaps&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{{
		Effective: uint32(DefaultCaps),
		Permitted: uint32(DefaultCaps),
	}, {
		Effective: uint32(DefaultCaps >> 32),
		Permitted: uint32(DefaultCaps >> 32),
	}}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

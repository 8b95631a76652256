package exec

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/sandboxinit"
)

// seccompCall runs prog on one syscall. bpf.VM loads words big-endian, as from a
// packet; the kernel loads seccomp_data's words natively, so each 32-bit word is
// written big-endian here and the program sees the values the kernel would give it.
func seccompCall(t *testing.T, vm *bpf.VM, a *arch.Info, nr int, args ...uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], uint32(nr|a.SeccompMask))
	binary.BigEndian.PutUint32(data[4:], uint32(a.ID))
	for i, v := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(v))
		binary.BigEndian.PutUint32(data[16+8*i+4:], uint32(v>>32))
	}
	ret, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(ret)
}

func newSeccompVM(t *testing.T, prog []bpf.Instruction) *bpf.VM {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

const (
	retAllow  = seccompRetAllow
	retEPERM  = seccompRetErrno | uint32(unix.EPERM)
	retENOSYS = seccompRetErrno | uint32(unix.ENOSYS)
)

// Docker's default profile for kiln's capabilities, compiled, decides as Docker's
// does on every architecture an amd64 or arm64 host runs: ordinary calls pass, a
// user namespace, keyctl, mount and bpf do not, clone3 says ENOSYS so a libc falls
// back to clone, numbers past the profile say ENOSYS, and argument rules hold.
func TestDefaultSeccompDecides(t *testing.T) {
	raw, err := defaultSeccomp(defaultCapNames)
	if err != nil {
		t.Fatal(err)
	}
	prog := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		prog[i] = r.Disassemble()
	}
	vm := newSeccompVM(t, prog)
	var arches []*arch.Info
	switch runtime.GOARCH {
	case "amd64":
		arches = []*arch.Info{arch.X86_64, arch.I386, arch.X32}
	case "arm64":
		arches = []*arch.Info{arch.AARCH64, arch.ARM}
	default:
		t.Fatalf("no expectations for %s", runtime.GOARCH)
	}
	const cloneNewUser, cloneThread = 0x10000000, 0x3d0f00
	for _, a := range arches {
		nr := func(name string) int {
			n, ok := a.SyscallNames[name]
			if !ok {
				t.Fatalf("%s has no %s", a.Name, name)
			}
			return n
		}
		for _, c := range []struct {
			name string
			args []uint64
			want uint32
		}{
			{"read", nil, retAllow}, {"execve", nil, retAllow}, {"capset", nil, retAllow},
			{"setresuid", nil, retAllow}, {"chroot", nil, retAllow}, // CAP_SYS_CHROOT is kiln's
			{"unshare", []uint64{cloneNewUser}, retEPERM}, {"setns", nil, retEPERM},
			{"keyctl", nil, retEPERM}, {"add_key", nil, retEPERM}, {"mount", nil, retEPERM},
			{"bpf", nil, retEPERM}, {"ptrace", nil, retAllow}, {"reboot", nil, retEPERM},
			{"clone", []uint64{cloneThread}, retAllow}, {"clone", []uint64{cloneNewUser}, retEPERM},
			{"clone3", nil, retENOSYS},
			{"personality", []uint64{0}, retAllow}, {"personality", []uint64{0xffffffff}, retAllow},
			{"personality", []uint64{1}, retEPERM}, {"personality", []uint64{1 << 32}, retEPERM},
			{"socket", []uint64{unix.AF_UNIX}, retAllow}, {"socket", []uint64{unix.AF_INET6}, retAllow},
			{"socket", []uint64{unix.AF_VSOCK}, retEPERM},
		} {
			if a == arch.ARM && c.name == "clone" {
				continue // arm's clone takes its flags first too; checked on the others
			}
			if got := seccompCall(t, vm, a, nr(c.name), c.args...); got != c.want {
				t.Errorf("%s %s%v: %#x, want %#x", a.Name, c.name, c.args, got, c.want)
			}
		}
		if got := seccompCall(t, vm, a, 4000); got != retENOSYS {
			t.Errorf("%s: syscall 4000 (past the profile) %#x, want ENOSYS", a.Name, got)
		}
	}
	// An architecture the host cannot run is killed, as libseccomp's bad-arch.
	other := &arch.Info{ID: 0x12345678}
	if got := seccompCall(t, vm, other, 0); got != seccompRetKillProcess {
		t.Errorf("unknown arch: %#x, want KILL_PROCESS", got)
	}
}

// Each comparison operator on 64-bit arguments, checked against Go's arithmetic on
// values chosen to meet at the word boundaries, and several conditions in a rule
// hold together.
func TestSeccompArgumentOperators(t *testing.T) {
	values := []uint64{0, 1, 2, 0xffffffff, 1 << 32, 1<<32 | 1, 1<<32 | 0xffffffff, 2 << 32, 1<<63 | 5}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		values = append(values, r.Uint64(), r.Uint64()&0xffffffff, r.Uint64()&^0xffffffff)
	}
	ops := map[specs.LinuxSeccompOperator]func(arg, v, v2 uint64) bool{
		specs.OpEqualTo:      func(a, v, _ uint64) bool { return a == v },
		specs.OpNotEqual:     func(a, v, _ uint64) bool { return a != v },
		specs.OpLessThan:     func(a, v, _ uint64) bool { return a < v },
		specs.OpLessEqual:    func(a, v, _ uint64) bool { return a <= v },
		specs.OpGreaterThan:  func(a, v, _ uint64) bool { return a > v },
		specs.OpGreaterEqual: func(a, v, _ uint64) bool { return a >= v },
		specs.OpMaskedEqual:  func(a, v, v2 uint64) bool { return a&v == v2 },
	}
	a := arch.X86_64
	for op, holds := range ops {
		for _, v := range values {
			v2 := v & 0x0000ffff0000ffff
			p := &specs.LinuxSeccomp{
				DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 2, Value: v, ValueTwo: v2, Op: op}}},
					// Two conditions: both must hold.
					{Names: []string{"write"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
						{Index: 0, Value: v, ValueTwo: v2, Op: op}, {Index: 5, Value: 7, Op: specs.OpEqualTo}}},
				},
			}
			prog, err := compileSeccomp(p)
			if err != nil {
				t.Fatal(err)
			}
			vm := newSeccompVM(t, prog)
			for _, arg := range values {
				want := retEPERM
				if holds(arg, v, v2) {
					want = retAllow
				}
				if got := seccompCall(t, vm, a, a.SyscallNames["read"], 0, 0, arg); got != want {
					t.Errorf("%s %#x: arg %#x gives %#x, want %#x", op, v, arg, got, want)
				}
				if got := seccompCall(t, vm, a, a.SyscallNames["write"], arg, 0, 0, 0, 0, 7); got != want {
					t.Errorf("%s %#x and arg5 == 7: arg %#x gives %#x, want %#x", op, v, arg, got, want)
				}
				if got := seccompCall(t, vm, a, a.SyscallNames["write"], arg, 0, 0, 0, 0, 8); got != retEPERM {
					t.Errorf("%s %#x and arg5 == 7: arg5 8 passes", op, v)
				}
			}
		}
	}
}

func TestSeccompRefusesWhatItCannotCompile(t *testing.T) {
	for name, p := range map[string]*specs.LinuxSeccomp{
		"action":   {DefaultAction: specs.ActNotify, Architectures: []specs.Arch{specs.ArchX86_64}},
		"operator": {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64}, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_FOO"}}}}},
		"index":    {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64}, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
		"arch":     {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchS390X}},
	} {
		if _, err := compileSeccomp(p); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
}

func TestDefaultCapNames(t *testing.T) {
	bits := map[string]int{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_FSETID": unix.CAP_FSETID,
		"CAP_FOWNER": unix.CAP_FOWNER, "CAP_MKNOD": unix.CAP_MKNOD, "CAP_NET_RAW": unix.CAP_NET_RAW,
		"CAP_SETGID": unix.CAP_SETGID, "CAP_SETUID": unix.CAP_SETUID, "CAP_SETFCAP": unix.CAP_SETFCAP,
		"CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
		"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_KILL": unix.CAP_KILL, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	}
	var mask uint64
	for _, n := range defaultCapNames {
		b, ok := bits[n]
		if !ok {
			t.Fatalf("unknown capability %s", n)
		}
		mask |= 1 << b
	}
	if mask != sandboxinit.DefaultCaps {
		t.Errorf("defaultCapNames is %#x, sandboxinit.DefaultCaps %#x", mask, sandboxinit.DefaultCaps)
	}
}

func BenchmarkDefaultSeccomp(b *testing.B) {
	for b.Loop() {
		if _, err := defaultSeccomp(defaultCapNames); err != nil {
			b.Fatal(err)
		}
	}
}

// profileDecides reads a profile as the kernel must apply it, with no compiler in
// between: the first rule naming the call whose conditions all hold decides; a
// number above every number the profile names for the architecture is ENOSYS; the
// rest get the default action.
func profileDecides(t *testing.T, p *specs.LinuxSeccomp, a *arch.Info, nr int, args []uint64) uint32 {
	t.Helper()
	holds := func(c specs.LinuxSeccompArg) bool {
		v := args[c.Index]
		switch c.Op {
		case specs.OpEqualTo:
			return v == c.Value
		case specs.OpNotEqual:
			return v != c.Value
		case specs.OpLessThan:
			return v < c.Value
		case specs.OpLessEqual:
			return v <= c.Value
		case specs.OpGreaterThan:
			return v > c.Value
		case specs.OpGreaterEqual:
			return v >= c.Value
		case specs.OpMaskedEqual:
			return v&c.Value == c.ValueTwo
		}
		t.Fatalf("operator %s", c.Op)
		return false
	}
	highest := -1
	for _, sc := range p.Syscalls {
		for _, name := range sc.Names {
			if n, ok := a.SyscallNames[name]; ok {
				highest = max(highest, n)
			}
		}
	}
	if nr > highest {
		return retENOSYS
	}
	for _, sc := range p.Syscalls {
		if !slices.ContainsFunc(sc.Names, func(name string) bool { n, ok := a.SyscallNames[name]; return ok && n == nr }) {
			continue
		}
		if !slices.ContainsFunc(sc.Args, func(c specs.LinuxSeccompArg) bool { return !holds(c) }) {
			act, err := seccompAction(sc.Action, sc.ErrnoRet)
			if err != nil {
				t.Fatal(err)
			}
			return act
		}
	}
	act, err := seccompAction(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		t.Fatal(err)
	}
	return act
}

// The compiled program decides every syscall number of every architecture as the
// profile's rules do, for arguments that meet and miss each of its conditions:
// Docker's default profile for kiln's capabilities and for all of them (more
// conditional rules), and a profile whose rules for one call are split, mixed
// with conditions and repeated.
func TestSeccompDecidesAsTheProfile(t *testing.T) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: defaultCapNames}}}
	kiln, err := seccomp.GetDefaultProfile(rs)
	if err != nil {
		t.Fatal(err)
	}
	// The capabilities the profile's rules name, beyond kiln's.
	rs.Process.Capabilities.Bounding = slices.Concat(defaultCapNames, []string{
		"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT", "CAP_SYS_MODULE", "CAP_SYS_PACCT",
		"CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_SYS_NICE",
		"CAP_SYSLOG", "CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH",
	})
	all, err := seccomp.GetDefaultProfile(rs)
	if err != nil {
		t.Fatal(err)
	}
	eq := func(i uint, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Value: v, Op: specs.OpEqualTo}
	}
	errno := uint(unix.EACCES)
	mixed := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno, Architectures: kiln.Architectures,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "close"}, Action: specs.ActAllow},
			{Names: []string{"openat"}, Action: specs.ActErrno, ErrnoRet: &errno, Args: []specs.LinuxSeccompArg{eq(0, 3)}},
			{Names: []string{"open", "openat", "stat"}, Action: specs.ActAllow},
			{Names: []string{"read"}, Action: specs.ActKillProcess}, // never reached: read is allowed above
			{Names: []string{"kill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(1, 0)}},
			{Names: []string{"kill"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{eq(1, 9)}},
			{Names: []string{"fstat", "lstat"}, Action: specs.ActTrap},
		},
	}
	for name, p := range map[string]*specs.LinuxSeccomp{"kiln's caps": kiln, "all caps": all, "mixed": mixed} {
		prog, err := compileSeccomp(p)
		if err != nil {
			t.Fatal(err)
		}
		vm := newSeccompVM(t, prog)
		// Arguments: zeros, ones, and for each condition its value, its value
		// plus one, and its second value, in its argument.
		argSets := [][]uint64{make([]uint64, 6), {^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}}
		conditional := map[string]bool{}
		for _, sc := range p.Syscalls {
			for _, n := range sc.Names {
				conditional[n] = conditional[n] || len(sc.Args) > 0
			}
			for _, c := range sc.Args {
				for _, v := range []uint64{c.Value, c.Value + 1, c.ValueTwo} {
					set := make([]uint64, 6)
					set[c.Index] = v
					argSets = append(argSets, set)
				}
			}
		}
		for _, sa := range p.Architectures {
			a := profileArches[sa]
			if a == nil || (runtime.GOARCH == "amd64") != (a == arch.X86_64 || a == arch.I386 || a == arch.X32) {
				continue
			}
			checked := 0
			for nr := range slices.Max(slices.Collect(maps.Keys(a.SyscallNumbers))) + 3 {
				sets := argSets[:2] // a call no condition names is decided by its number
				if conditional[a.SyscallNumbers[nr]] {
					sets = argSets
				}
				for _, args := range sets {
					want := profileDecides(t, p, a, nr, args)
					if got := seccompCall(t, vm, a, nr, args...); got != want {
						t.Fatalf("%s, %s syscall %d (%s) args %#x: %#x, want %#x", name, a.Name, nr, a.SyscallNumbers[nr], args, got, want)
					}
					checked++
				}
			}
			t.Logf("%s, %s: %d calls agree, %d instructions", name, a.Name, checked, len(prog))
		}
	}
}

// BenchmarkSeccompLoad is what the kernel spends installing a step's program: the
// check, the JIT and the walk of every syscall number for its allow cache. Each
// load is on a thread of its own that then exits; "thread" is that thread alone.
func BenchmarkSeccompLoad(b *testing.B) {
	raw, err := defaultSeccomp(defaultCapNames)
	if err != nil {
		b.Fatal(err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	for _, load := range []bool{false, true} {
		name := "thread"
		if load {
			name = fmt.Sprintf("thread+load-%d-instructions", len(filter))
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				errc := make(chan error, 1)
				go func() {
					runtime.LockOSThread() // never unlocked: the thread and its filter go with the goroutine
					if load {
						if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
							errc <- e
							return
						}
					}
					errc <- nil
				}()
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

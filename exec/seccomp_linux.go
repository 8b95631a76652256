package exec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A step runs under Docker's default seccomp profile, as under BuildKit and Docker
// (runc applies it there): /proc/self/status says "Seccomp: 2", and what the
// profile refuses (unshare of a user namespace, keyctl, bpf, mount without
// CAP_SYS_ADMIN, ptrace of other processes...) fails with EPERM. The profile is
// moby/profiles' (what Docker and BuildKit ship), filtered for kiln's capabilities
// and the host architecture; kiln compiles it to a BPF program here, with the
// syscall tables of go-seccomp-bpf, instead of through libseccomp (cgo).
//
// The program follows libseccomp and runc: every architecture the profile's
// archMap gives the host (amd64: x86_64, i386 and x32; arm64: aarch64 and arm)
// gets its own block, a syscall number above the highest the profile names
// returns ENOSYS (runc's rule, so that a libc falls back from a syscall newer than
// the profile), and the rest returns the profile's default, EPERM.

// Seccomp return values (linux/seccomp.h).
const (
	seccompRetKillProcess = 0x80000000
	seccompRetKillThread  = 0x00000000
	seccompRetTrap        = 0x00030000
	seccompRetErrno       = 0x00050000
	seccompRetLog         = 0x7ffc0000
	seccompRetAllow       = 0x7fff0000

	// Offsets in struct seccomp_data.
	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArgs = 16

	bpfMaxInsns = 4096 // BPF_MAXINSNS: the longest program the kernel takes
)

// profileArches maps the profile's architecture names to syscall tables. An
// architecture without one (ppc64le, s390x, riscv64...) is left out of the
// program: the kernel then refuses its syscalls, as libseccomp's bad-arch action.
var profileArches = map[specs.Arch]*arch.Info{
	specs.ArchX86_64:  arch.X86_64,
	specs.ArchX86:     arch.I386,
	specs.ArchX32:     arch.X32,
	specs.ArchAARCH64: arch.AARCH64,
	specs.ArchARM:     arch.ARM,
}

// errNoSeccompTable says kiln has no syscall table for the host architecture.
var errNoSeccompTable = errors.New("no syscall table for this architecture")

// stepSeccomp is a RUN step's seccomp program as the init takes it: Docker's
// default profile for the default capabilities, nil where the host architecture
// has no syscall table.
func stepSeccomp() ([]byte, error) {
	filter, err := defaultSeccomp(defaultCapNames)
	if errors.Is(err, errNoSeccompTable) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return seccompBytes(filter), nil
}

// defaultSeccomp is the BPF program of Docker's default profile for a process with
// caps as its bounding set, on the host architecture.
func defaultSeccomp(caps []string) ([]bpf.RawInstruction, error) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	profile, err := seccomp.GetDefaultProfile(rs)
	if err != nil {
		return nil, fmt.Errorf("seccomp: default profile: %w", err)
	}
	prog, err := compileSeccomp(profile)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	if len(prog) > bpfMaxInsns {
		return nil, fmt.Errorf("seccomp: the program has %d instructions, more than the kernel's %d", len(prog), bpfMaxInsns)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	return raw, nil
}

// compileSeccomp turns a runtime-spec seccomp profile into a BPF program.
func compileSeccomp(p *specs.LinuxSeccomp) ([]bpf.Instruction, error) {
	def, err := seccompAction(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("default action: %w", err)
	}
	var x32 *arch.Info
	var others []*arch.Info
	for _, a := range p.Architectures {
		switch info := profileArches[a]; {
		case info == nil:
		case info == arch.X32:
			x32 = info
		default:
			others = append(others, info)
		}
	}
	if len(others) == 0 {
		return nil, fmt.Errorf("%s: %w", runtime.GOARCH, errNoSeccompTable)
	}

	blocks := make([][]bpf.Instruction, len(others))
	for i, a := range others {
		b, err := archBlock(p, a, def)
		if err != nil {
			return nil, err
		}
		if a == arch.X86_64 && x32 != nil {
			// x32 calls come with the x86_64 audit arch and the x32 bit set in
			// their number: they go to their own block, after the x86_64 one.
			xb, err := archBlock(p, x32, def)
			if err != nil {
				return nil, err
			}
			head := []bpf.Instruction{
				bpf.LoadAbsolute{Off: seccompDataNr, Size: 4},
				bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(x32.SeccompMask), SkipFalse: 1},
				bpf.Jump{Skip: uint32(len(b))},
			}
			b = slices.Concat(head, b, xb)
		}
		blocks[i] = b
	}

	// Dispatch on the audit arch: a jeq/ja pair per block, then the bad-arch
	// return; blocks follow in order.
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: seccompDataArch, Size: 4}}
	dispatch := 2*len(others) + 1
	offset := 0 // from the end of the dispatch to the start of block i
	for i, a := range others {
		remaining := dispatch - (2*i + 2) // instructions after this ja, to the end of dispatch
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(a.ID), SkipFalse: 1},
			bpf.Jump{Skip: uint32(remaining + offset)},
		)
		offset += len(blocks[i])
	}
	prog = append(prog, bpf.RetConstant{Val: seccompRetKillProcess})
	for _, b := range blocks {
		prog = append(prog, b...)
	}
	return prog, nil
}

// archBlock is the program for one architecture's calls: it starts by loading the
// syscall number and always returns.
//
// The profile's rules are first-match, and the rules of two syscalls never meet,
// so each syscall's rules keep their order but the syscalls are free to move. A
// syscall whose first rule has no conditions (nearly all of Docker's profile) is
// decided by its number alone: those are checked as sorted ranges of numbers per
// action (rangeChecks), the rest rule by rule after them. The kernel walks the
// program once per syscall number of every architecture when it loads it (to cache
// the calls it always allows), and the JIT compiles every instruction: a few dozen
// ranges in place of a few hundred equality tests is what makes a step's seccomp
// load cheap.
func archBlock(p *specs.LinuxSeccomp, a *arch.Info, def uint32) ([]bpf.Instruction, error) {
	mask := uint32(a.SeccompMask)
	type rule struct {
		args []specs.LinuxSeccompArg
		act  uint32
	}
	rules := map[int][]rule{}
	highest := -1
	for _, sc := range p.Syscalls {
		act, err := seccompAction(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls %v: %w", sc.Names, err)
		}
		for _, name := range sc.Names {
			nr, ok := a.SyscallNames[name]
			if !ok {
				continue // not a syscall of this architecture, as libseccomp skips it
			}
			highest = max(highest, nr)
			rules[nr] = append(rules[nr], rule{sc.Args, act})
		}
	}
	nrs := slices.Sorted(maps.Keys(rules))

	// byNumber: the syscalls decided by their number, per action, ascending.
	byNumber := map[uint32][]uint32{}
	var acts []uint32 // in order of first use, so the program does not depend on map order
	var conditional []bpf.Instruction
	loaded := true // A holds the syscall number
	for _, nr := range nrs {
		rs := rules[nr]
		if len(rs[0].args) == 0 {
			if _, ok := byNumber[rs[0].act]; !ok {
				acts = append(acts, rs[0].act)
			}
			byNumber[rs[0].act] = append(byNumber[rs[0].act], uint32(nr)|mask)
			continue
		}
		for _, r := range rs {
			ins, err := syscallRule(uint32(nr)|mask, r.args, r.act, !loaded)
			if err != nil {
				return nil, fmt.Errorf("syscall %s: %w", a.SyscallNumbers[nr], err)
			}
			conditional = append(conditional, ins...)
			loaded = len(r.args) == 0
			if loaded {
				break // an unconditional rule decides; later ones never match
			}
		}
	}

	b := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(highest) | mask, SkipFalse: 1},
		bpf.RetConstant{Val: seccompRetErrno | uint32(unix.ENOSYS)},
	}
	for _, act := range acts {
		b = append(b, rangeChecks(byNumber[act], act)...)
	}
	b = append(b, conditional...)
	return append(b, bpf.RetConstant{Val: def}), nil
}

// rangeChecks returns act when A (the syscall number) is one of nrs (ascending) and
// falls through otherwise. Each run of consecutive numbers costs two tests: past
// its end, go on to the next run; else at or past its start, act; else no run
// further on holds A either. A conditional jump reaches at most 255 instructions,
// so the runs go in chunks, each with its own return and a long jump out.
func rangeChecks(nrs []uint32, act uint32) []bpf.Instruction {
	type span struct{ lo, hi uint32 }
	var spans []span
	for _, nr := range nrs {
		if n := len(spans); n > 0 && spans[n-1].hi+1 == nr {
			spans[n-1].hi = nr
			continue
		}
		spans = append(spans, span{nr, nr})
	}
	const perChunk = 100 // 2 tests each: the farthest jump is 201 instructions
	var chunks [][]bpf.Instruction
	for c := range slices.Chunk(spans, perChunk) {
		k := len(c)
		ins := make([]bpf.Instruction, 0, 2*k+2)
		for i, s := range c {
			past := uint8(1) // to the next run's first test
			if i == k-1 {
				past = 3 // over this chunk's return and jump out, to the next chunk
			}
			ins = append(ins,
				bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: s.hi, SkipTrue: past},
				bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: s.lo,
					SkipTrue: uint8(2*k - 2*i - 2), SkipFalse: uint8(2*k - 2*i - 1)},
			)
		}
		chunks = append(chunks, append(ins, bpf.RetConstant{Val: act}, bpf.Jump{}))
	}
	// Each chunk's jump out skips the chunks after it.
	after := 0
	for i := len(chunks) - 1; i >= 0; i-- {
		chunks[i][len(chunks[i])-1] = bpf.Jump{Skip: uint32(after)}
		after += len(chunks[i])
	}
	return slices.Concat(chunks...)
}

// syscallRule returns act when the syscall is nr and every condition holds, and
// falls through to the next rule otherwise.
func syscallRule(nr uint32, args []specs.LinuxSeccompArg, act uint32, reload bool) ([]bpf.Instruction, error) {
	var r []bpf.Instruction
	if reload {
		r = append(r, bpf.LoadAbsolute{Off: seccompDataNr, Size: 4})
	}
	if len(args) == 0 {
		return append(r, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1}, bpf.RetConstant{Val: act}), nil
	}
	// fail marks a jump to the rule's end (past its return), patched below.
	const fail = 0xff
	body := []bpf.Instruction{bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: fail}}
	for _, arg := range args {
		c, err := argCondition(arg, fail)
		if err != nil {
			return nil, err
		}
		body = append(body, c...)
	}
	body = append(body, bpf.RetConstant{Val: act})
	if len(body) > 255 {
		return nil, fmt.Errorf("%d conditions are too many for one rule", len(args))
	}
	for i, ins := range body {
		j, ok := ins.(bpf.JumpIf)
		if !ok {
			continue
		}
		toEnd := uint8(len(body) - 1 - i)
		if j.SkipTrue == fail {
			j.SkipTrue = toEnd
		}
		if j.SkipFalse == fail {
			j.SkipFalse = toEnd
		}
		body[i] = j
	}
	return append(r, body...), nil
}

// argCondition checks one 64-bit argument, the high word then the low one, as
// libseccomp does. It falls through when the condition holds and jumps fail
// instructions (a placeholder syscallRule patches) when it does not.
func argCondition(arg specs.LinuxSeccompArg, fail uint8) ([]bpf.Instruction, error) {
	if arg.Index > 5 {
		return nil, fmt.Errorf("argument %d: a syscall has six", arg.Index)
	}
	hiOff := uint32(seccompDataArgs + 8*arg.Index + 4) // little-endian: the high word second
	loOff := uint32(seccompDataArgs + 8*arg.Index)
	ldHi := bpf.LoadAbsolute{Off: hiOff, Size: 4}
	ldLo := bpf.LoadAbsolute{Off: loOff, Size: 4}
	vHi, vLo := uint32(arg.Value>>32), uint32(arg.Value)
	switch arg.Op {
	case specs.OpEqualTo:
		return []bpf.Instruction{
			ldHi, bpf.JumpIf{Cond: bpf.JumpEqual, Val: vHi, SkipFalse: fail},
			ldLo, bpf.JumpIf{Cond: bpf.JumpEqual, Val: vLo, SkipFalse: fail},
		}, nil
	case specs.OpNotEqual:
		return []bpf.Instruction{
			ldHi, bpf.JumpIf{Cond: bpf.JumpEqual, Val: vHi, SkipFalse: 2},
			ldLo, bpf.JumpIf{Cond: bpf.JumpEqual, Val: vLo, SkipTrue: fail},
		}, nil
	case specs.OpMaskedEqual:
		want := arg.ValueTwo
		return []bpf.Instruction{
			ldHi, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: vHi},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(want >> 32), SkipFalse: fail},
			ldLo, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: vLo},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(want), SkipFalse: fail},
		}, nil
	case specs.OpLessThan, specs.OpLessEqual:
		last := bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: vLo, SkipTrue: fail}
		if arg.Op == specs.OpLessEqual {
			last.Cond = bpf.JumpGreaterThan
		}
		return []bpf.Instruction{
			ldHi,
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: vHi, SkipTrue: fail},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: vHi, SkipFalse: 2}, // high word below: holds
			ldLo, last,
		}, nil
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		last := bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: vLo, SkipFalse: fail}
		if arg.Op == specs.OpGreaterEqual {
			last.Cond = bpf.JumpGreaterOrEqual
		}
		return []bpf.Instruction{
			ldHi,
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: vHi, SkipTrue: 3}, // high word above: holds
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: vHi, SkipFalse: fail},
			ldLo, last,
		}, nil
	}
	return nil, fmt.Errorf("argument %d: operator %s is not supported", arg.Index, arg.Op)
}

// seccompAction is the return value of a profile action.
func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	switch a {
	case specs.ActAllow:
		return seccompRetAllow, nil
	case specs.ActErrno:
		errno := uint32(unix.EPERM)
		if errnoRet != nil {
			errno = uint32(*errnoRet)
		}
		return seccompRetErrno | errno&0xffff, nil
	case specs.ActKill, specs.ActKillThread:
		return seccompRetKillThread, nil
	case specs.ActKillProcess:
		return seccompRetKillProcess, nil
	case specs.ActTrap:
		return seccompRetTrap, nil
	case specs.ActLog:
		return seccompRetLog, nil
	}
	return 0, fmt.Errorf("action %s is not supported", a)
}

// seccompBytes encodes a program as struct sock_filter entries (little-endian),
// the form sandboxinit.Config carries to the init.
func seccompBytes(prog []bpf.RawInstruction) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		b = binary.LittleEndian.AppendUint16(b, ins.Op)
		b = append(b, ins.Jt, ins.Jf)
		b = binary.LittleEndian.AppendUint32(b, ins.K)
	}
	return b
}

// defaultCapNames is sandboxinit.DefaultCaps by name, for the seccomp profile's rules that
// depend on capabilities (TestDefaultCapNames keeps the two equal).
var defaultCapNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

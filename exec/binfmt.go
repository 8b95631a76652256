package exec

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// A RUN in a stage of a foreign architecture (FROM --platform=linux/arm64 on an amd64
// host) runs the stage's own binaries: the kernel hands each one to the interpreter
// binfmt_misc has registered for its ELF header, Debian's qemu-user-static. The entry
// needs the F (fix binary) flag: the kernel then opens the interpreter when it is
// registered, so it runs inside the step's rootfs, where no qemu is. kiln reads the
// registrations to fail a step early with a clear error; it changes them only through
// `kiln binfmt install|remove` (InstallEmulator, RemoveEmulator).

// BinfmtDir is where binfmt_misc is mounted.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// Emulator is a binfmt_misc entry that runs ELF binaries of an architecture.
type Emulator struct {
	Name        string // the entry's name, e.g. qemu-aarch64
	Interpreter string // e.g. /usr/libexec/qemu-binfmt/aarch64-binfmt-P
	Flags       string // e.g. "POF"
}

// EmulatorError says why a foreign architecture's binaries cannot run and how to fix
// it.
type EmulatorError struct {
	Arch   string // GOARCH spelling, e.g. arm64
	Reason string
}

func (e *EmulatorError) Error() string {
	return fmt.Sprintf("running linux/%s binaries on this linux/%s host needs an emulator: %s; "+
		"register Debian's qemu-user-static (apt-get install qemu-user-static) with `kiln binfmt install %s` as root",
		e.Arch, runtime.GOARCH, e.Reason, e.Arch)
}

// elfArch is how an architecture's executables start, and what qemu calls it.
type elfArch struct {
	machine elf.Machine
	class   elf.Class
	order   binary.ByteOrder
	qemu    string
}

// elfArches are the architectures kiln can emulate, by GOARCH (OCI) name.
var elfArches = map[string]elfArch{
	"amd64":    {elf.EM_X86_64, elf.ELFCLASS64, binary.LittleEndian, "x86_64"},
	"386":      {elf.EM_386, elf.ELFCLASS32, binary.LittleEndian, "i386"},
	"arm64":    {elf.EM_AARCH64, elf.ELFCLASS64, binary.LittleEndian, "aarch64"},
	"arm":      {elf.EM_ARM, elf.ELFCLASS32, binary.LittleEndian, "arm"},
	"ppc64le":  {elf.EM_PPC64, elf.ELFCLASS64, binary.LittleEndian, "ppc64le"},
	"ppc64":    {elf.EM_PPC64, elf.ELFCLASS64, binary.BigEndian, "ppc64"},
	"s390x":    {elf.EM_S390, elf.ELFCLASS64, binary.BigEndian, "s390x"},
	"riscv64":  {elf.EM_RISCV, elf.ELFCLASS64, binary.LittleEndian, "riscv64"},
	"mips64le": {elf.EM_MIPS, elf.ELFCLASS64, binary.LittleEndian, "mips64el"},
	"loong64":  {elf.EM_LOONGARCH, elf.ELFCLASS64, binary.LittleEndian, "loongarch64"},
}

// QemuName is qemu's name of a GOARCH architecture (arm64 → aarch64), false for one
// kiln does not know.
func QemuName(arch string) (string, bool) {
	a, ok := elfArches[arch]
	return a.qemu, ok
}

// NeedsEmulation reports whether binaries of arch do not run natively on the host:
// any other architecture, except 32-bit x86 on amd64 and 32-bit arm on arm64, which
// the CPU runs itself.
func NeedsEmulation(arch string) bool {
	switch {
	case arch == "" || arch == runtime.GOARCH:
		return false
	case runtime.GOARCH == "amd64" && arch == "386", runtime.GOARCH == "arm64" && arch == "arm":
		return false
	}
	return true
}

// elfHeader is the first 20 bytes of an executable of a: e_ident, e_type (ET_EXEC)
// and e_machine, what binfmt_misc entries match.
func (a elfArch) header() []byte {
	h := make([]byte, 20)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(a.class)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	if a.order == binary.BigEndian {
		h[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	}
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	a.order.PutUint16(h[16:], uint16(elf.ET_EXEC))
	a.order.PutUint16(h[18:], uint16(a.machine))
	return h
}

// binfmtEntry is one registration as /proc/sys/fs/binfmt_misc/NAME shows it.
type binfmtEntry struct {
	Emulator
	enabled bool
	offset  int
	magic   []byte
	mask    []byte
}

// parseBinfmtEntry reads an entry's file; an extension entry (which matches names,
// not content) has no magic.
func parseBinfmtEntry(name, text string) binfmtEntry {
	e := binfmtEntry{Emulator: Emulator{Name: name}}
	for _, line := range strings.Split(text, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch k {
		case "enabled":
			e.enabled = true
		case "interpreter":
			e.Interpreter = v
		case "flags:":
			e.Flags = v
		case "offset":
			e.offset, _ = strconv.Atoi(v)
		case "magic":
			e.magic, _ = hex.DecodeString(v)
		case "mask":
			e.mask, _ = hex.DecodeString(v)
		}
	}
	return e
}

// matches reports whether the entry takes a file that starts with header.
func (e binfmtEntry) matches(header []byte) bool {
	if len(e.magic) == 0 || e.offset+len(e.magic) > len(header) {
		return false
	}
	for i, m := range e.magic {
		b := header[e.offset+i]
		if i < len(e.mask) {
			b &= e.mask[i]
			m &= e.mask[i]
		}
		if b != m {
			return false
		}
	}
	return true
}

// findEmulator picks, from the entries by name, the enabled one that takes arch's
// executables and opens its interpreter itself (F), or says what is wrong.
func findEmulator(arch string, entries map[string]string) (Emulator, error) {
	a, ok := elfArches[arch]
	if !ok {
		return Emulator{}, &EmulatorError{Arch: arch, Reason: "kiln knows no emulator for this architecture"}
	}
	h := a.header()
	var disabled, unfixed []string
	for name, text := range entries {
		e := parseBinfmtEntry(name, text)
		if !e.matches(h) {
			continue
		}
		switch {
		case !e.enabled:
			disabled = append(disabled, name)
		case !strings.Contains(e.Flags, "F"):
			unfixed = append(unfixed, name)
		default:
			return e.Emulator, nil
		}
	}
	switch {
	case len(unfixed) > 0:
		return Emulator{}, &EmulatorError{Arch: arch, Reason: fmt.Sprintf(
			"binfmt_misc entry %s is registered without the F (fix binary) flag, so its interpreter would be looked up inside the step's rootfs",
			strings.Join(unfixed, ", "))}
	case len(disabled) > 0:
		return Emulator{}, &EmulatorError{Arch: arch, Reason: fmt.Sprintf("binfmt_misc entry %s is disabled", strings.Join(disabled, ", "))}
	}
	return Emulator{}, &EmulatorError{Arch: arch, Reason: "no binfmt_misc interpreter for it is registered"}
}

// binfmtConf is a line of systemd's binfmt.d format, :name:type:offset:magic:mask:
// interpreter:flags, as Debian's qemu-user-static ships in /usr/lib/binfmt.d; F is
// added to its flags when missing.
func binfmtRegistration(conf []byte) (name string, line []byte, err error) {
	for _, l := range bytes.Split(conf, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 || l[0] == '#' || l[0] == ';' {
			continue
		}
		fields := bytes.Split(l, []byte(":"))
		if len(fields) != 8 || len(fields[0]) != 0 {
			return "", nil, fmt.Errorf("not a binfmt_misc registration: %q", l)
		}
		if !bytes.Contains(fields[7], []byte("F")) {
			fields[7] = append(fields[7], 'F')
		}
		return string(fields[1]), bytes.Join(fields, []byte(":")), nil
	}
	return "", nil, fmt.Errorf("no binfmt_misc registration in it")
}

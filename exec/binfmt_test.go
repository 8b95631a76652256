package exec

import (
	"errors"
	"strings"
	"testing"
)

// Debian's qemu-user-static registration of aarch64 (/usr/lib/binfmt.d/qemu-aarch64.conf)
// and the entry the kernel shows once it is registered.
const (
	debianAarch64Conf = `:qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OP` + "\n"
	aarch64Entry      = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
)

func TestFindEmulator(t *testing.T) {
	noF := strings.Replace(aarch64Entry, "flags: POF", "flags: PO", 1)
	disabled := strings.Replace(aarch64Entry, "enabled", "disabled", 1)
	jar := "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n"
	for _, tc := range []struct {
		name    string
		arch    string
		entries map[string]string
		want    string // the entry found, or a phrase of the error
	}{
		{"registered", "arm64", map[string]string{"jar": jar, "qemu-aarch64": aarch64Entry}, "qemu-aarch64"},
		{"another name", "arm64", map[string]string{"aarch64-by-hand": aarch64Entry}, "aarch64-by-hand"},
		{"none", "arm64", map[string]string{"jar": jar}, "no binfmt_misc interpreter"},
		{"not for this arch", "riscv64", map[string]string{"qemu-aarch64": aarch64Entry}, "no binfmt_misc interpreter"},
		{"without F", "arm64", map[string]string{"qemu-aarch64": noF}, "without the F (fix binary) flag"},
		{"disabled", "arm64", map[string]string{"qemu-aarch64": disabled}, "is disabled"},
		{"unknown arch", "sparc", nil, "knows no emulator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := findEmulator(tc.arch, tc.entries)
			var ee *EmulatorError
			switch {
			case err == nil && e.Name == tc.want:
			case errors.As(err, &ee) && strings.Contains(err.Error(), tc.want):
				if !strings.Contains(err.Error(), "kiln binfmt install "+tc.arch) {
					t.Errorf("the error does not say how to register one: %v", err)
				}
			default:
				t.Errorf("got %+v, %v; want %s", e, err, tc.want)
			}
		})
	}
}

// kiln binfmt install registers Debian's line with F added, which the kernel then
// shows as an entry that takes arm64 executables.
func TestBinfmtRegistration(t *testing.T) {
	name, line, err := binfmtRegistration([]byte("# comment\n" + debianAarch64Conf))
	if err != nil {
		t.Fatal(err)
	}
	if name != "qemu-aarch64" || !strings.HasSuffix(string(line), ":OPF") {
		t.Errorf("registration %s %q", name, line)
	}
	if _, _, err := binfmtRegistration([]byte("not a registration\n")); err == nil {
		t.Error("a malformed file was taken")
	}
	if !parseBinfmtEntry("qemu-aarch64", aarch64Entry).matches(elfArches["arm64"].header()) {
		t.Error("Debian's aarch64 magic does not take an arm64 executable's header")
	}
	if parseBinfmtEntry("qemu-aarch64", aarch64Entry).matches(elfArches["amd64"].header()) {
		t.Error("Debian's aarch64 magic takes an amd64 executable's header")
	}
}

package source

import "testing"

func TestParseChmod(t *testing.T) {
	for _, tc := range []struct {
		in, key string
		octal   bool
	}{
		{"0755", "755", true}, {"755", "755", true}, {"4755", "4755", true}, {"0", "0", true},
		{"u+x,g-r", "u+x,g-r", false}, {"a=rX", "a=rX", false}, {"+t", "+t", false},
	} {
		m, err := ParseChmod(tc.in)
		if err != nil {
			t.Errorf("ParseChmod(%q): %v", tc.in, err)
			continue
		}
		if m.String() != tc.key || m.Octal() != tc.octal {
			t.Errorf("ParseChmod(%q) = %q octal %v, want %q octal %v", tc.in, m.String(), m.Octal(), tc.key, tc.octal)
		}
	}
	for _, in := range []string{"", "8", "17777", "u+q", "x+u", "0o755", "u+x,"} {
		if m, err := ParseChmod(in); err == nil {
			t.Errorf("ParseChmod(%q) = %q, want an error", in, m.String())
		}
	}
}

func TestChmodApply(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		old   uint32
		dir   bool
		want  uint32
		want0 uint32 // a created directory
	}{
		{"0640", 0o755, true, 0o640, 0o640},
		{"u+x,g-r", 0o644, false, 0o704, 0o755},
		{"go-w,a+X", 0o750, true, 0o751, 0o755},
		{"go-w,a+X", 0o600, false, 0o600, 0o755},
		{"+w", 0o644, false, 0o666, 0o755}, // umask 0, as BuildKit
		{"o=u", 0o640, false, 0o646, 0o755},
		{"u-x+s", 0o755, false, 0o4655, 0o755},
	} {
		m, err := ParseChmod(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.apply(tc.old, tc.dir); got != tc.want {
			t.Errorf("%s on %o: %o, want %o", tc.spec, tc.old, got, tc.want)
		}
		if got := m.createdDir(); got != tc.want0 {
			t.Errorf("%s: created dir %o, want %o", tc.spec, got, tc.want0)
		}
	}
}

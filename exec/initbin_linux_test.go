package exec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

func sha256Hex(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// The kiln-init beside kiln is started only when it is the file kiln was built with,
// through the descriptor that was hashed; a missing one is silent, another one warns
// once, and a kiln built without a digest does not look.
func TestInitBinaryOnlyItsOwn(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, InitName)
	if err := os.WriteFile(name, []byte("the init\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256Hex(t, name)

	var warnings []string
	warn := func(s string) { warnings = append(warnings, s) }
	own := &InitBinary{Sum: sum, Dir: dir, Warn: warn}
	defer own.Close()
	p := own.Path()
	if !strings.HasPrefix(p, "/proc/self/fd/") {
		t.Fatalf("Path = %q, want the verified descriptor", p)
	}
	// What is started is what was hashed, even when the file is replaced since.
	if err := os.WriteFile(name+".new", []byte("another init\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".new", name); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "the init\n" {
		t.Errorf("the descriptor reads %q, %v", b, err)
	}
	if own.Path() != p {
		t.Errorf("Path changed on the second call")
	}

	other := &InitBinary{Sum: sum, Dir: dir, Warn: warn}
	defer other.Close()
	if p := other.Path(); p != "" {
		t.Errorf("another file: Path = %q, want \"\"", p)
	}
	other.Path()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "is not the one this kiln was built with") {
		t.Errorf("warnings = %q, want one that says the init is another build's", warnings)
	}

	warnings = nil
	missing := &InitBinary{Sum: sum, Dir: t.TempDir(), Warn: warn}
	if p := missing.Path(); p != "" || len(warnings) != 0 {
		t.Errorf("missing: Path = %q, warnings %q", p, warnings)
	}
	none := &InitBinary{Dir: dir, Warn: warn}
	if p := none.Path(); p != "" || len(warnings) != 0 {
		t.Errorf("no digest: Path = %q, warnings %q", p, warnings)
	}
	var nilInit *InitBinary
	if p := nilInit.Path(); p != "" {
		t.Errorf("nil: Path = %q", p)
	}
}

// A step runs the same under kiln-init as under kiln itself, and Spec.Init is what
// starts: a binary that is no init (it exits 0 without starting the command) fails
// the step rather than passing for it.
func TestRunWithInitBinary(t *testing.T) {
	fs := newSandboxFS(t)
	bin := t.TempDir()
	testenv.GoBuild(t, bin, InitName, "github.com/kiln-build/kiln/cmd/kiln-init")
	kilnInit := &InitBinary{Sum: sha256Hex(t, filepath.Join(bin, InitName)), Dir: bin}
	defer kilnInit.Close()
	path := kilnInit.Path()
	if path == "" {
		t.Fatal("the kiln-init just built was not found")
	}
	script := "id -u; echo $HOME; pwd; echo to-stderr >&2; cat /proc/self/status | grep -c '^CapEff:.0000000000000000'"
	want := fs.mustRun(t, Spec{User: "app", Cwd: "/tmp"}, script)
	out, stderr, err := fs.run(t, context.Background(), Spec{User: "app", Cwd: "/tmp", Init: path}, script)
	if err != nil {
		t.Fatalf("run with kiln-init: %v\nstderr: %s", err, stderr)
	}
	if out != want || want != "1000\n/home/app\n/tmp\n1\n" || stderr != "to-stderr\n" {
		t.Errorf("with kiln-init: stdout %q stderr %q; with kiln: %q", out, stderr, want)
	}
	_, _, err = fs.run(t, context.Background(), Spec{Init: path, Args: []string{"no-such-tool"}}, "")
	if ee := exitCode(t, err); ee.Code != 127 || !strings.Contains(err.Error(), "executable file not found") {
		t.Errorf("missing command under kiln-init: %v", err)
	}

	_, _, err = fs.run(t, context.Background(), Spec{Init: "/bin/true"}, "echo ran > /ran")
	if err == nil || !strings.Contains(err.Error(), "exited without starting") {
		t.Errorf("an init that is none: error = %v", err)
	}
	if _, serr := os.Stat(filepath.Join(fs.upper, "ran")); serr == nil {
		t.Errorf("the command ran under /bin/true")
	}
}

package exec

import (
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// isolateHelper runs in the test binary re-executed by TestIsolate: it isolates
// itself and reports its mount namespace and whether "/" still propagates.
func isolateHelper() {
	if err := Isolate(); err != nil {
		fmt.Println("isolate:", err)
		os.Exit(2)
	}
	ns, _ := os.Readlink("/proc/self/ns/mnt")
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	shared := false
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && f[4] == "/" && strings.Contains(line, "shared:") {
			shared = true
		}
	}
	fmt.Printf("%s shared=%v marker=%q atstart=%v\n", ns, shared, os.Getenv(isolateEnv), isolatedAtStart())
	os.Exit(7)
}

// TestIsolate runs the test binary as a command that does not mount (no "build"
// argument): Isolate re-executes it into a private mount namespace.
func TestIsolate(t *testing.T) {
	testenv.RequireRoot(t)
	got := runIsolateHelper(t)
	if want := fmt.Sprintf(" shared=false marker=%q atstart=false", ""); !strings.HasSuffix(got, want) {
		t.Errorf("isolated child reports %q, want the re-executed child (%q)", got, want)
	}
}

// runIsolateHelper runs isolateHelper in the test binary with args and returns its
// report, checking it is in another mount namespace than the test.
func runIsolateHelper(t *testing.T, args ...string) string {
	t.Helper()
	cmd := osexec.Command("/proc/self/exe", append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), "KILN_TEST_ISOLATE=1")
	out, err := cmd.Output()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("exit: %v, output %q", err, out)
	}
	ours, _ := os.Readlink("/proc/self/ns/mnt")
	got := strings.TrimSpace(string(out))
	if strings.HasPrefix(got, ours+" ") {
		t.Errorf("isolated child reports %q: the test's own mount namespace", got)
	}
	return got
}

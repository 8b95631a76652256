//go:build linux && cgo

package exec

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// With a "build" argument the constructor isolates the process before Go starts:
// Isolate returns at once, in a private namespace whose "/" does not propagate,
// without the re-execution (no marker).
func TestIsolateAtStart(t *testing.T) {
	testenv.RequireRoot(t)
	got := runIsolateHelper(t, "build")
	if want := fmt.Sprintf(" shared=false marker=%q atstart=true", ""); !strings.HasSuffix(got, want) {
		t.Errorf("child reports %q, want the constructor's namespace (%q)", got, want)
	}
}

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksOnlyTheInit keeps kiln-init small: every package a binary links runs its
// initialisation at each start, once per RUN step for this one, so it may link the
// standard library and only the packages the init's own code needs. A package that
// pulls in kiln's exec package, cgroup libraries or protobuf descriptors fails here.
func TestLinksOnlyTheInit(t *testing.T) {
	allowed := map[string]bool{
		"github.com/kiln-build/kiln/cmd/kiln-init":              true,
		"github.com/kiln-build/kiln/internal/sandboxinit":       true,
		"github.com/kiln-build/kiln/internal/userns":            true,
		"github.com/cyphar/filepath-securejoin":                 true,
		"github.com/cyphar/filepath-securejoin/internal/consts": true,
		"github.com/moby/sys/mountinfo":                         true,
		"golang.org/x/sys/unix":                                 true,
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 2 {
		t.Fatalf("go list found %q: not kiln-init's dependencies", deps)
	}
	for _, d := range deps {
		if !allowed[d] {
			t.Errorf("kiln-init links %s: the init must link only what it runs (move the code it needs into internal/sandboxinit)", d)
		}
	}
}

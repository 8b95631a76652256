package dockerfile

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source"
)

// crossStages: a stage pinned to $BUILDPLATFORM whose first RUN reads no TARGET* arg
// (shared by every platform) and whose second does (one per platform), and final
// stages of each target platform.
const crossStages = `FROM --platform=$BUILDPLATFORM scratch AS build
RUN shared
ARG TARGETARCH
RUN per-arch
FROM scratch
ARG TARGETPLATFORM
COPY --from=build /out /out
RUN final
`

// BuildPlatforms: what the platforms share runs once, what reads TARGETARCH runs per
// platform, each op sees its stage's architecture, and progress names carry the
// stage's platform.
func TestBuildPlatformsSharesBuildPlatformStage(t *testing.T) {
	e := newEngine(t)
	plats := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	var targets []Target
	for _, p := range plats {
		g, err := parser.Parse(strings.NewReader(crossStages), parser.Options{Filename: "Dockerfile",
			TargetPlatform: p.String(), BuildPlatform: "linux/amd64"})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, Target{Platform: p, Graph: g})
	}
	bctx, err := source.Open(e.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	runs := map[string][]string{} // argv → the arch of each execution
	var events []solver.Event
	exe := fakeRun(func(ctx context.Context, spec exec.Spec) error {
		mu.Lock()
		defer mu.Unlock()
		cmd := spec.Args[len(spec.Args)-1]
		runs[cmd] = append(runs[cmd], spec.Arch)
		return nil
	})
	res, err := BuildPlatforms(context.Background(), Options{Filename: "Dockerfile", Context: bctx, Store: e.store,
		Snapshots: e.snaps, Executor: exe, Jobs: 2, Progress: func(ev solver.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}}, targets)
	if err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string][]string{"shared": {"amd64"}, "per-arch": {"amd64", "amd64"}, "final": {"amd64", "arm64"}} {
		got := slices.Sorted(slices.Values(runs[cmd]))
		if !slices.Equal(got, want) {
			t.Errorf("RUN %s executed for %v, want %v", cmd, got, want)
		}
	}
	for i, p := range plats {
		if res[i].Config.Architecture != p.Architecture || res[i].Config.OS != "linux" {
			t.Errorf("image %d is %s/%s, want %s", i, res[i].Config.OS, res[i].Config.Architecture, p)
		}
	}
	var names []string
	for _, ev := range events {
		if ev.Kind == solver.StepStarted {
			names = append(names, ev.Name)
		}
	}
	for _, want := range []string{"[linux/amd64 build 1/2] RUN shared", "[linux/arm64 stage-1 2/2] RUN final", "[linux/amd64 stage-1 2/2] RUN final"} {
		if !slices.Contains(names, want) {
			t.Errorf("no step started as %q in %q", want, names)
		}
	}
	if n := strings.Count(strings.Join(names, "\n"), "RUN shared"); n != 1 {
		t.Errorf("the shared RUN was reported started %d times, want once", n)
	}
}

// A one-stage Dockerfile's titles name no stage, and in a multi-platform build only
// the platform: "[linux/arm64 1/1] RUN x", as BuildKit's.
func TestBuildPlatformsOneStageTitles(t *testing.T) {
	e := newEngine(t)
	var targets []Target
	for _, arch := range []string{"amd64", "arm64"} {
		p := v1.Platform{OS: "linux", Architecture: arch}
		g, err := parser.Parse(strings.NewReader("FROM scratch\nRUN x\n"), parser.Options{Filename: "Dockerfile", TargetPlatform: p.String()})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, Target{Platform: p, Graph: g})
	}
	bctx, err := source.Open(e.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var names []string
	_, err = BuildPlatforms(context.Background(), Options{Filename: "Dockerfile", Context: bctx, Store: e.store,
		Snapshots: e.snaps, Executor: fakeRun(nil), Progress: func(ev solver.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Kind == solver.StepStarted {
				names = append(names, ev.Name)
			}
		}}, targets)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"[linux/amd64 1/1] RUN x", "[linux/arm64 1/1] RUN x"}; !slices.Equal(names, want) {
		t.Errorf("titles %q, want %q", names, want)
	}
}

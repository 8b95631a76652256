package dockerfile

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/solver/solvertest"
	"github.com/kiln-build/kiln/source/remote"
)

// prestartLog is a fake executor that is a solver.Prestarter: it records, in
// order, each Prestart (with its network) and each step it runs.
type prestartLog struct {
	mu    sync.Mutex
	calls []string
}

func (p *prestartLog) Prestart(spec exec.Spec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "prestart "+string(spec.Network))
}

func (p *prestartLog) Run(ctx context.Context, spec exec.Spec) error {
	p.mu.Lock()
	p.calls = append(p.calls, "run")
	p.mu.Unlock()
	return solvertest.Executor(nil)(ctx, spec)
}

func (p *prestartLog) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

// A stage whose base has layers to unpack has the sandbox of its first RUN started
// meanwhile, once, with that RUN's network: before the step runs. A base already
// unpacked, or a stage without RUN, starts none.
func TestFirstRunSandboxStartsWhileBaseUnpacks(t *testing.T) {
	testenv.RequireRoot(t) // the busybox layer has root-owned files
	layout := t.TempDir()
	if err := testenv.WriteBusyboxOCILayout(layout); err != nil {
		t.Fatal(err)
	}
	busybox, err := remote.ParseNamedContext("oci-layout://" + layout)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]remote.NamedContext{"busybox": busybox}
	var e *engine
	const withRuns = "FROM busybox\nENV A=1\nRUN --network=none one\nRUN two\n"
	for _, tc := range []struct {
		name       string
		dockerfile string
		noCache    bool
		fresh      bool
		want       []string
	}{
		{name: "cold", dockerfile: withRuns, fresh: true,
			want: []string{"prestart none", "run", "run"}},
		{name: "unpacked already", dockerfile: withRuns, noCache: true,
			want: []string{"run", "run"}},
		{name: "cached", dockerfile: withRuns},
		{name: "no RUN", dockerfile: "FROM busybox\nENV A=1\n", fresh: true},
	} {
		// Each case builds on the store the one before it left, unless fresh.
		if tc.fresh || e == nil {
			e = newEngine(t)
		}
		t.Run(tc.name, func(t *testing.T) {
			log := &prestartLog{}
			r := e.solve(context.Background(), tc.dockerfile, Options{
				Graph: graphArgs(nil), Executor: log, NamedContexts: named, NoCache: tc.noCache, Jobs: 1,
			})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if got := log.take(); !slices.Equal(got, tc.want) {
				t.Errorf("executor calls %q, want %q", got, tc.want)
			}
		})
	}
}

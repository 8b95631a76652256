package solver_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/solver/solvertest"
)

// Several platforms' solves of one build: an op of the same platform on the same
// state (a stage pinned to $BUILDPLATFORM) executes once however many solves reach
// it at once, and only its first step is reported; the same op for another platform
// is another op. The views share the --jobs bound and step numbers.
func TestEngineMergesIdenticalOpsAcrossPlatforms(t *testing.T) {
	r := newRig(t)
	var runs atomic.Int64
	var arches sync.Map
	exe := solvertest.Executor(func(ctx context.Context, spec exec.Spec) error {
		runs.Add(1)
		arches.Store(spec.Arch, true)
		time.Sleep(50 * time.Millisecond) // the solves reach the op while it runs
		return nil
	})
	eng := r.engine(solver.Options{Executor: exe, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}})
	build := eng.ForPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})

	const solves = 4
	results := make([]solver.StepResult, solves)
	ids := make([]int, solves)
	var wg sync.WaitGroup
	for i := range solves {
		wg.Go(func() {
			s := solver.Step{Op: runOp("go", "build"), ID: eng.NextID(), Name: "[linux/amd64 build 2/2] RUN go build", Display: "RUN", Scope: "s"}
			ids[i] = s.ID
			res, err := build.Run(context.Background(), build.Scratch(), s, solver.RunInputs{})
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("the shared op executed %d times, want once", n)
	}
	for i := 1; i < solves; i++ {
		if results[i].State.Key != results[0].State.Key || results[i].DiffID == nil || *results[i].DiffID != *results[0].DiffID {
			t.Errorf("solve %d got another result than solve 0", i)
		}
	}
	reported := 0
	for _, id := range ids {
		if len(r.kinds(id)) > 0 {
			reported++
		}
	}
	if reported != 1 {
		t.Errorf("%d steps reported events, want 1 (merged steps of one name are shown once)", reported)
	}

	// The same op for arm64 is keyed apart, executed, and told its architecture.
	arm := eng.ForPlatform(v1.Platform{OS: "linux", Architecture: "arm64"})
	res, err := arm.Run(context.Background(), arm.Scratch(), solver.Step{Op: runOp("go", "build"), ID: eng.NextID(), Name: "arm", Scope: "s"}, solver.RunInputs{})
	if err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 2 || res.State.Key == results[0].State.Key {
		t.Errorf("arm64's op was not executed on its own (runs %d)", runs.Load())
	}
	if _, ok := arches.Load("arm64"); !ok {
		t.Error("the executor was not told the arm64 step's architecture")
	}
	if eng.FirstReport("x") != true || arm.FirstReport("x") != false {
		t.Error("FirstReport is not shared by the platform views")
	}
}

// A twin step under another name (another stage of the same solve) takes the first
// one's result, reported as cached.
func TestEngineMergedTwinReportedCached(t *testing.T) {
	r := newRig(t)
	var runs atomic.Int64
	e := r.engine(solver.Options{Executor: solvertest.Executor(func(context.Context, exec.Spec) error { runs.Add(1); return nil })})
	a := solver.Step{Op: runOp("make"), ID: e.NextID(), Name: "[a 2/2] RUN make", Scope: "a"}
	if _, err := e.Run(context.Background(), e.Scratch(), a, solver.RunInputs{}); err != nil {
		t.Fatal(err)
	}
	b := solver.Step{Op: runOp("make"), ID: e.NextID(), Name: "[b 2/2] RUN make", Scope: "b"}
	if _, err := e.Run(context.Background(), e.Scratch(), b, solver.RunInputs{}); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 1 {
		t.Errorf("executed %d times, want 1", runs.Load())
	}
	if k := r.kinds(b.ID); len(k) != 1 || k[0] != solver.StepCached {
		t.Errorf("the twin's events are %v, want one StepCached", k)
	}
}

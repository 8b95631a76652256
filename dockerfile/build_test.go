package dockerfile

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/solver/solvertest"
	"github.com/kiln-build/kiln/source"
)

// The front end tested without root (only options that need none: cache-mount and secret
// ownership need root and are covered by the e2e harness): FROM scratch, the copy snapshotter, and a fake
// executor that "runs" a step by writing its argv and env into the rootfs, so that
// what a step saw is what its layer holds. These tests cover keys (what reruns a
// step), scheduling (--jobs), cancellation and error wrapping.

// fakeRun is the fake executor: it writes what a step saw into its rootfs.
func fakeRun(hook func(ctx context.Context, spec exec.Spec) error) solver.ExecutorFunc {
	return solvertest.Executor(hook)
}

// engine is one store (the in-memory fake) and context for root-free solves.
type engine struct {
	t     *testing.T
	store *solvertest.Store
	snaps *snapshot.Snapshotter
	dir   string // the build context
}

func newEngine(t *testing.T) *engine {
	t.Helper()
	ctx := context.Background()
	store, err := solvertest.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(ctx, t.TempDir(), snapshot.WithoutOverlay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Wait() })
	return &engine{t: t, store: store, snaps: snaps, dir: t.TempDir()}
}

// solveResult is what a solve did: the events and the result or error.
type solveResult struct {
	res    *Result
	err    error
	events []solver.Event
}

// started lists the names of the steps that ran (were not cached).
func (r solveResult) started() []string {
	var out []string
	for _, e := range r.events {
		if e.Kind == solver.StepStarted && !strings.Contains(e.Name, "] FROM ") {
			out = append(out, e.Name)
		}
	}
	return out
}

func (e *engine) solve(ctx context.Context, dockerfile string, opts Options) solveResult {
	e.t.Helper()
	g, err := parser.Parse(strings.NewReader(dockerfile), parser.Options{Filename: "Dockerfile", BuildArgs: opts.Graph.BuildArgs})
	if err != nil {
		e.t.Fatal(err)
	}
	bctx, err := source.Open(e.dir, "")
	if err != nil {
		e.t.Fatal(err)
	}
	var mu sync.Mutex
	var r solveResult
	opts.Graph, opts.Filename, opts.Context, opts.Store, opts.Snapshots = g, "Dockerfile", bctx, e.store, e.snaps
	if opts.Executor == nil {
		opts.Executor = fakeRun(nil)
	}
	opts.Progress = func(ev solver.Event) {
		mu.Lock()
		r.events = append(r.events, ev)
		mu.Unlock()
	}
	r.res, r.err = Build(ctx, opts)
	return r
}

func graphArgs(args map[string]string) *parser.Graph { return &parser.Graph{BuildArgs: args} }

// What reruns a RUN: each case builds A, then B on the same store, and says whether
// B's RUN must run again.
func TestBuildRunKeys(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a, b     string
		optsB    func(*Options)
		rerun    bool
		argsA, B map[string]string
	}{
		{name: "same", a: "RUN a b", b: "RUN a b"},
		{name: "argv split vs one arg", a: `RUN ["touch","/x y"]`, b: `RUN ["touch","/x","y"]`, rerun: true},
		{name: "exec vs shell form", a: `RUN ["/bin/sh","-c","echo hi"]`, b: `RUN echo hi`},
		{name: "shell changed", a: "RUN echo hi", b: "SHELL [\"/bin/ash\",\"-c\"]\nRUN echo hi", rerun: true},
		{name: "env", a: "ENV A=1\nRUN x", b: "ENV A=2\nRUN x", rerun: true},
		{name: "unused arg", a: "ARG U=1\nRUN x", b: "ARG U=1\nRUN x", B: map[string]string{"OTHER": "2"}},
		{name: "used arg", a: "ARG U=1\nRUN x", b: "ARG U=2\nRUN x", rerun: true},
		{name: "user", a: "USER 1\nRUN x", b: "USER 2\nRUN x", rerun: true},
		{name: "workdir", a: "WORKDIR /a\nRUN x", b: "WORKDIR /b\nRUN x", rerun: true},
		{name: "network flag", a: "RUN x", b: "RUN --network=none x", rerun: true},
		{name: "network option", a: "RUN x", b: "RUN x", optsB: func(o *Options) { o.Network = exec.NetworkNone }, rerun: true},
		{name: "pids limit", a: "RUN x", b: "RUN x", optsB: func(o *Options) { o.Limits.Pids = 64 }, rerun: true},
		{name: "memory limit", a: "RUN x", b: "RUN x", optsB: func(o *Options) { o.Limits.MemoryBytes = 64 << 20 }, rerun: true},
		{name: "compression", a: "RUN x", b: "RUN x", optsB: func(o *Options) { o.Compression = "zstd" }},
		{name: "epoch", a: "RUN x", b: "RUN x", optsB: func(o *Options) { e := time.Unix(1, 0); o.SourceDateEpoch = &e }},
		{name: "tmpfs size", a: "RUN --mount=type=tmpfs,target=/t x", b: "RUN --mount=type=tmpfs,target=/t,size=1m x", rerun: true},
		{name: "cache target", a: "RUN --mount=type=cache,target=/c x", b: "RUN --mount=type=cache,target=/d x", rerun: true},
		{name: "cache id", a: "RUN --mount=type=cache,target=/c,id=a x", b: "RUN --mount=type=cache,target=/c,id=b x"},
		{name: "cache sharing", a: "RUN --mount=type=cache,target=/c x", b: "RUN --mount=type=cache,target=/c,sharing=private x"},
		{name: "secret not given, target", a: "RUN --mount=type=secret,id=s x", b: "RUN --mount=type=secret,id=s,target=/s x", rerun: true},
		{name: "no-cache", a: "RUN x", b: "RUN x", optsB: func(o *Options) { o.NoCache = true }, rerun: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			ctx := context.Background()
			if r := e.solve(ctx, "FROM scratch\n"+tc.a+"\n", Options{Graph: graphArgs(tc.argsA)}); r.err != nil {
				t.Fatalf("A: %v", r.err)
			}
			opts := Options{Graph: graphArgs(tc.B)}
			if tc.optsB != nil {
				tc.optsB(&opts)
			}
			r := e.solve(ctx, "FROM scratch\n"+tc.b+"\n", opts)
			if r.err != nil {
				t.Fatalf("B: %v", r.err)
			}
			ran := false
			for _, n := range r.started() {
				ran = ran || strings.Contains(n, "RUN")
			}
			if ran != tc.rerun {
				t.Errorf("B's RUN ran = %v, want %v (steps that ran: %q)", ran, tc.rerun, r.started())
			}
		})
	}
}

// Independent stages run at once, never more than --jobs of them.
func TestBuildJobsBoundConcurrency(t *testing.T) {
	e := newEngine(t)
	var cur, peak atomic.Int64
	exe := fakeRun(func(ctx context.Context, spec exec.Spec) error {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
		return nil
	})
	df := "FROM scratch AS a\nRUN a\nFROM scratch AS b\nRUN b\nFROM scratch AS c\nRUN c\nFROM scratch AS d\nRUN d\n" +
		"FROM scratch\nCOPY --from=a /out /a\nCOPY --from=b /out /b\nCOPY --from=c /out /c\nCOPY --from=d /out /d\n"
	r := e.solve(context.Background(), df, Options{Graph: graphArgs(nil), Executor: exe, Jobs: 2})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("at most %d steps ran at once with --jobs 2, want 2", p)
	}
}

// Cancelling the build while a step runs stops it: the executor sees its context
// done, Solve returns the context's error, and nothing of the step is cached.
func TestBuildCancelMidStep(t *testing.T) {
	e := newEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	entered := make(chan struct{})
	var sawCancel atomic.Bool
	exe := fakeRun(func(ctx context.Context, spec exec.Spec) error {
		close(entered)
		<-ctx.Done()
		sawCancel.Store(true)
		return ctx.Err()
	})
	go func() {
		<-entered
		cancel()
	}()
	r := e.solve(ctx, "FROM scratch\nRUN slow\n", Options{Graph: graphArgs(nil), Executor: exe})
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Solve = %v, want context.Canceled", r.err)
	}
	if !sawCancel.Load() {
		t.Error("the running step never saw the cancellation")
	}
	again := e.solve(context.Background(), "FROM scratch\nRUN slow\n", Options{Graph: graphArgs(nil)})
	if again.err != nil || len(again.started()) != 1 {
		t.Errorf("after a cancelled build the step was cached or failed: %v, ran %q", again.err, again.started())
	}
}

// errSandbox stands for a failure of the executor itself.
var errSandbox = errors.New("sandbox broke")

// A step's error names its Dockerfile line and keeps its cause for errors.Is/As.
func TestBuildErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		exe  func(ctx context.Context, spec exec.Spec) error
		is   error
		as   bool // errors.As(err, **exec.ExitError)
		msg  string
	}{
		{"executor error", func(context.Context, exec.Spec) error { return errSandbox }, errSandbox, false, "sandbox broke"},
		{"exit code", func(context.Context, exec.Spec) error { return &exec.ExitError{Code: 3} }, nil, true, "exit code: 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			r := e.solve(context.Background(), "FROM scratch\nENV A=1\nRUN fails\n", Options{Graph: graphArgs(nil), Executor: fakeRun(tc.exe)})
			var pe *parser.Error
			if !errors.As(r.err, &pe) || pe.Line != 3 {
				t.Fatalf("error %v does not name line 3", r.err)
			}
			if !strings.Contains(r.err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", r.err, tc.msg)
			}
			if tc.is != nil && !errors.Is(r.err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", r.err, tc.is)
			}
			var ee *exec.ExitError
			if errors.As(r.err, &ee) != tc.as {
				t.Errorf("errors.As(ExitError) = %v, want %v", !tc.as, tc.as)
			}
		})
	}
	// A COPY of a missing file: the line, and the cause.
	e := newEngine(t)
	r := e.solve(context.Background(), "FROM scratch\nCOPY missing.txt /\n", Options{Graph: graphArgs(nil)})
	var pe *parser.Error
	if !errors.As(r.err, &pe) || pe.Line != 2 || !errors.Is(r.err, os.ErrNotExist) && !strings.Contains(r.err.Error(), "missing.txt") {
		t.Errorf("COPY of a missing file: %v", r.err)
	}
}

// One Graph can be solved more than once: each solve expands its own copy of the
// instructions (an escaped \$ expanded twice would lose its escape).
func TestBuildGraphSolvedTwice(t *testing.T) {
	g, err := parser.Parse(strings.NewReader("FROM scratch\nENV A=1\nENV B=\\$A\nWORKDIR /w\nRUN x\n"), parser.Options{Filename: "Dockerfile"})
	if err != nil {
		t.Fatal(err)
	}
	var envs []string
	for range 2 {
		e := newEngine(t)
		bctx, err := source.Open(e.dir, "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := Build(context.Background(), Options{Graph: g, Filename: "Dockerfile", Context: bctx,
			Store: e.store, Snapshots: e.snaps, Executor: fakeRun(nil)})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, strings.Join(res.Config.Config.Env, " "))
	}
	for i, env := range envs {
		if !strings.Contains(env, "B=$A") {
			t.Errorf("solve %d: env %q, want B=$A kept literal", i+1, env)
		}
	}
}

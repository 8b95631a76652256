package solver

import "context"

// Ops are merged within a build, as BuildKit merges identical vertices: the first
// solve that needs an op (by its state key) looks it up or runs it, and every other
// solve of the build that reaches the same op waits for that and takes its result. So
// a stage pinned to $BUILDPLATFORM, which every target platform's solve builds with
// the same keys, runs once however many platforms need it, and twin stages of one
// Dockerfile do not race to execute the same step.

// opOnce is one op resolved in a build.
type opOnce struct {
	done chan struct{}
	name string // the progress name of the step that resolved it
	res  StepResult
	err  error
}

// resolveOnce returns what resolve gives for the op of stateKey, calling it only for
// the first step of the build with that key. A later step with the same progress name
// (the same stage of another platform's solve) reports nothing of its own; one under
// another name (a twin stage) is reported cached.
func (e *Engine) resolveOnce(ctx context.Context, stateKey string, x *stepExec, resolve func() (StepResult, error)) (StepResult, error) {
	e.mu.Lock()
	o, found := e.ops[stateKey]
	if !found {
		o = &opOnce{done: make(chan struct{}), name: x.Name}
		e.ops[stateKey] = o
	}
	e.mu.Unlock()
	if !found {
		o.res, o.err = resolve()
		close(o.done)
		return o.res, o.err
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		return StepResult{}, ctx.Err()
	}
	if o.err == nil && x.Name != o.name {
		e.Emit(Event{Kind: StepCached, ID: x.ID, Name: x.Name})
	}
	return o.res, o.err
}

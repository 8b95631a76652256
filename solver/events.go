package solver

import "time"

// EventKind says what happened to a step.
type EventKind int

const (
	StepStarted EventKind = iota // the step began executing (not cached)
	StepCached                   // the step was satisfied from the cache
	StepDone                     // the step finished executing
	StepFailed                   // the step failed
	StepLog                      // a chunk of the step's output (Data)
	StepInfo                     // a note about the step (Message), e.g. why the cache missed
)

// Event is one progress report. Steps are numbered across the whole build (ID, from 1)
// in the order they are first reported, as BuildKit's plain output numbers them.
type Event struct {
	Kind     EventKind
	ID       int    // the step's number in this build
	Name     string // e.g. "[build 2/5] RUN make"
	Message  string // StepInfo, StepFailed
	Data     []byte // StepLog
	Stream   int    // StepLog: 1 stdout, 2 stderr
	Duration time.Duration
	Time     time.Time
	// Canceled says a StepFailed step was stopped because the build was cancelled
	// (Ctrl-C, another step's failure), not by a fault of its own.
	Canceled bool
}

// Progress receives events. It is called from several goroutines and must be safe for that.
type Progress func(Event)

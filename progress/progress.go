package progress

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/solver"
)

// Mode is how progress is shown: the values of --progress, as buildx names them.
type Mode string

const (
	Auto    Mode = "auto"    // tty on a terminal, else plain
	TTY     Mode = "tty"     // the live view
	Plain   Mode = "plain"   // one line per event
	RawJSON Mode = "rawjson" // BuildKit's SolveStatus, one JSON object per line
	Quiet   Mode = "quiet"   // warnings and errors only
)

// Modes are the values ParseMode takes, in the order help shows them.
var Modes = []Mode{Auto, Plain, TTY, RawJSON, Quiet}

// ParseMode reads a --progress value ("" is auto). Anything else is refused by name.
func ParseMode(s string) (Mode, error) {
	if s == "" {
		return Auto, nil
	}
	for _, m := range Modes {
		if Mode(s) == m {
			return m, nil
		}
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("--progress=%s is not a progress mode: use one of %s", s, strings.Join(names, ", "))
}

// Resolve turns Auto into TTY or Plain for the writer progress goes to.
func (m Mode) Resolve(w io.Writer) Mode {
	if m != Auto {
		return m
	}
	if IsTerminal(w) {
		return TTY
	}
	return Plain
}

// Printer takes a build's events (the solver's steps, the tasks of writing outputs,
// warnings) and hands them to one renderer. Its methods are safe for concurrent use.
type Printer struct {
	mu       sync.Mutex
	r        renderer
	now      func() time.Time
	stream   [16]byte // names this build's vertices (rawjson digests)
	byID     map[int]*vertex
	nextTask int
	closed   bool
}

// Options tune a Printer; the zero value suits a build.
type Options struct {
	// Size reports the terminal's columns and rows for the tty view (nil: asked of
	// the writer's terminal at every redraw, so a resize is followed).
	Size func() (cols, rows int)
	// Now is the clock (nil: time.Now); tests fix it.
	Now func() time.Time
	// Refresh is how often the tty view redraws (0: 150ms, as BuildKit's).
	Refresh time.Duration
}

// New makes a Printer for mode (Auto is resolved against w) writing to w.
func New(mode Mode, w io.Writer, opts Options) *Printer {
	p := &Printer{now: opts.Now, byID: map[int]*vertex{}, nextTask: taskIDBase}
	if p.now == nil {
		p.now = time.Now
	}
	// The stream id only has to make this build's vertex digests unique; a failed
	// read leaves it zero, which is still unique within the stream.
	_, _ = rand.Read(p.stream[:])
	switch mode.Resolve(w) {
	case TTY:
		size := opts.Size
		if size == nil {
			size = func() (int, int) { return TerminalSize(w) }
		}
		p.r = newTTY(w, size, p.now, opts.Refresh, &p.mu)
	case RawJSON:
		p.r = &rawJSON{w: w}
	case Quiet:
		p.r = &quiet{w: w}
	default:
		p.r = &plain{w: w, now: p.now}
	}
	return p
}

// taskIDBase keeps the numbers of tasks (exporting, pushing) apart from the solver's
// step numbers, which count from 1.
const taskIDBase = 1 << 30

// vertex is one step or task as the renderers see it.
type vertex struct {
	id        int // the solver's step number, or a task's
	index     int // the number shown (#N): given when first shown, so they are contiguous
	digest    digest.Digest
	name      string
	started   time.Time // zero: never started (a cached step)
	completed time.Time
	cached    bool
	err       string
	canceled  bool
	task      bool
	statuses  []*status

	// the last lines of output (with their time, as plain shows them), for the
	// error block of a failed step
	last     []string
	lastPart []byte

	// what the renderers keep of the output
	partial  []byte // plain: an output line not yet ended
	tail     []string
	tailPart string // tty: the line being written (a progress bar's current state)
	shown    bool   // tty: has a line on screen
}

func (v *vertex) done() bool { return !v.completed.IsZero() }

// errorLogLines is how many of a failed step's last output lines its error block
// shows, as BuildKit's.
const errorLogLines = 10

// keepLast records the complete lines of data among v's last output lines.
func (v *vertex) keepLast(data []byte, at time.Time) {
	buf := append(v.lastPart, data...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		v.last = append(v.last, fmt.Sprintf("%.3f %s", at.Sub(v.started).Seconds(), buf[:i]))
		if len(v.last) > errorLogLines {
			v.last = v.last[1:]
		}
		buf = buf[i+1:]
	}
	if len(buf) > 4096 {
		buf = buf[len(buf)-4096:]
	}
	v.lastPart = append(v.lastPart[:0], buf...)
}

// status is a sub-line of a vertex: "writing image sha256:… done".
type status struct {
	id        string
	started   time.Time
	completed time.Time
	timestamp time.Time
}

// renderer draws what the Printer records. Every method is called with the Printer's
// lock held.
type renderer interface {
	vertex(v *vertex)
	log(v *vertex, stream int, data []byte, at time.Time)
	note(v *vertex, msg string, at time.Time)
	status(v *vertex, s *status)
	info(msg string, at time.Time)
	warn(msg string)
	close()
}

func (p *Printer) vertexOf(id int, name string) *vertex {
	v := p.byID[id]
	if v == nil {
		var b [24]byte
		copy(b[:16], p.stream[:])
		binary.BigEndian.PutUint64(b[16:], uint64(id))
		v = &vertex{id: id, name: name, digest: digest.NewDigestFromBytes(digest.SHA256, sha256Sum(b[:]))}
		p.byID[id] = v
	}
	if name != "" {
		v.name = name
	}
	return v
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// Event is a solver.Progress: it records one of the solver's events.
func (p *Printer) Event(e solver.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	at := e.Time
	if at.IsZero() {
		at = p.now()
	}
	v := p.vertexOf(e.ID, e.Name)
	switch e.Kind {
	case solver.StepStarted:
		if v.started.IsZero() {
			v.started = at
		}
		p.r.vertex(v)
	case solver.StepCached:
		v.cached = true
		v.completed = at
		p.r.vertex(v)
	case solver.StepDone:
		// A step that never started has nothing to show: a FROM of an earlier stage
		// is reported done, but BuildKit shows no vertex for it.
		if v.started.IsZero() {
			return
		}
		v.completed = v.started.Add(e.Duration)
		if e.Duration == 0 {
			v.completed = at
		}
		p.r.vertex(v)
	case solver.StepFailed:
		if v.started.IsZero() {
			v.started = at
		}
		v.completed = at
		v.err = firstLine(e.Message)
		v.canceled = e.Canceled
		p.r.vertex(v)
	case solver.StepLog:
		if v.started.IsZero() {
			v.started = at
		}
		v.keepLast(e.Data, at)
		p.r.log(v, e.Stream, e.Data, at)
	case solver.StepInfo:
		p.r.note(v, e.Message, at)
	}
}

// Warn shows a warning in every mode.
func (p *Printer) Warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.r.warn(msg)
}

// Info shows a note of the build that belongs to no step: which sandbox runs the
// steps, what a remote cache held (quiet drops it).
func (p *Printer) Info(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.r.info(msg, p.now())
	}
}

func (p *Printer) nextTaskID() int {
	p.nextTask++
	return p.nextTask
}

// Close draws the final state and stops the live view. Events after it are dropped.
func (p *Printer) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	r := p.r
	p.mu.Unlock()
	// The tty view's redraw loop takes the lock itself: close it unlocked.
	r.close()
	if b, ok := r.(interface{ errorLogs() io.Writer }); ok {
		p.printErrorLogs(b.errorLogs())
	}
}

// printErrorLogs shows, below the progress, the last output lines of each step that
// failed (not of those cancelled), as BuildKit does before the error:
//
//	------
//	 > [stage-0 2/2] RUN make:
//	0.412 main.c:3: error: …
//	------
func (p *Printer) printErrorLogs(w io.Writer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var failed []*vertex
	for _, v := range p.byID {
		if v.err != "" && !v.canceled {
			failed = append(failed, v)
		}
	}
	slices.SortFunc(failed, func(a, b *vertex) int { return a.id - b.id })
	for _, v := range failed {
		fmt.Fprintf(w, "------\n > %s:\n", v.name)
		for _, l := range v.last {
			fmt.Fprintln(w, l)
		}
		if len(v.lastPart) > 0 {
			fmt.Fprintf(w, "%.3f %s\n", v.completed.Sub(v.started).Seconds(), v.lastPart)
		}
		fmt.Fprintln(w, "------")
	}
}

// Task is a piece of the build's work outside the solver, shown as a step of its own:
// "exporting to oci image format", "pushing to registry".
type Task struct {
	p *Printer
	v *vertex
}

// Task starts a task named name.
func (p *Printer) Task(name string) *Task {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.vertexOf(p.nextTaskID(), name)
	v.task = true
	v.started = p.now()
	if !p.closed {
		p.r.vertex(v)
	}
	return &Task{p: p, v: v}
}

// Status shows a finished sub-step of the task: "writing image sha256:… done".
// started is when it began (zero: now, and no duration is shown).
func (t *Task) Status(id string, started time.Time) {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	now := t.p.now()
	if started.IsZero() {
		started = now
	}
	s := &status{id: id, started: started, completed: now, timestamp: now}
	t.v.statuses = append(t.v.statuses, s)
	if !t.p.closed {
		t.p.r.status(t.v, s)
	}
}

// Done ends the task: err nil is success.
func (t *Task) Done(err error) {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	if t.v.done() {
		return
	}
	t.v.completed = t.p.now()
	if err != nil {
		t.v.err = firstLine(err.Error())
		t.v.canceled = errors.Is(err, context.Canceled)
	}
	if !t.p.closed {
		t.p.r.vertex(t.v)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// quiet shows warnings only.
type quiet struct{ w io.Writer }

func (q *quiet) vertex(*vertex)                      {}
func (q *quiet) log(*vertex, int, []byte, time.Time) {}
func (q *quiet) note(*vertex, string, time.Time)     {}
func (q *quiet) status(*vertex, *status)             {}
func (q *quiet) info(string, time.Time)              {}
func (q *quiet) warn(msg string)                     { fmt.Fprintf(q.w, "WARNING: %s\n", msg) }
func (q *quiet) close()                              {}

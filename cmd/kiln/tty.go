package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kiln-build/kiln/solver"
)

// ttyDisplay is the interactive progress view, in the manner of BuildKit's: one line per
// step with its state and time, and under each running step the last lines of its
// output. It redraws in place (cursor up + clear) a few times a second; finished steps
// scroll up and stay.
type ttyDisplay struct {
	w     io.Writer
	start time.Time

	mu      sync.Mutex
	steps   []*ttyStep
	byID    map[int]*ttyStep
	drawn   int // lines of the live block currently on screen
	done    chan struct{}
	stopped sync.WaitGroup
}

type ttyStep struct {
	id      int
	name    string
	state   string // "running", "done", "cached", "error", "canceled"
	started time.Time
	dur     time.Duration
	tail    []string
	partial string
	printed bool // already scrolled out of the live block
}

const ttyTailLines = 6

func newTTYDisplay(w io.Writer) *ttyDisplay {
	d := &ttyDisplay{w: w, start: time.Now(), byID: map[int]*ttyStep{}, done: make(chan struct{})}
	d.stopped.Add(1)
	go d.loop()
	return d
}

func (d *ttyDisplay) loop() {
	defer d.stopped.Done()
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			d.mu.Lock()
			d.redraw(false)
			d.mu.Unlock()
		case <-d.done:
			return
		}
	}
}

func (d *ttyDisplay) step(e solver.Event) *ttyStep {
	s, ok := d.byID[e.ID]
	if !ok {
		s = &ttyStep{id: e.ID, name: e.Name, state: "running", started: time.Now()}
		d.byID[e.ID] = s
		d.steps = append(d.steps, s)
	}
	return s
}

// Event records e; the next redraw shows it.
func (d *ttyDisplay) Event(e solver.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e.Kind {
	case solver.StepStarted:
		d.step(e)
	case solver.StepCached:
		s := d.step(e)
		s.state = "cached"
	case solver.StepDone:
		s := d.step(e)
		s.state, s.dur = "done", e.Duration
	case solver.StepFailed:
		s := d.step(e)
		s.state, s.dur = "error", time.Since(s.started)
	case solver.StepCanceled:
		s := d.step(e)
		s.state, s.dur = "canceled", time.Since(s.started)
	case solver.StepLog:
		s := d.step(e)
		text := s.partial + string(e.Data)
		lines := strings.Split(text, "\n")
		s.partial = lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			s.tail = append(s.tail, strings.TrimRight(l, "\r"))
		}
		if len(s.tail) > ttyTailLines {
			s.tail = s.tail[len(s.tail)-ttyTailLines:]
		}
	}
}

// redraw clears the live block and draws it again. Steps that finished since the last
// redraw are printed once, above the block, and scroll away with the terminal; the
// live block (a header and the running steps with their last lines) is redrawn.
// final leaves the block on screen for good.
func (d *ttyDisplay) redraw(final bool) {
	var b strings.Builder
	if d.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", d.drawn)
	}
	var live []*ttyStep
	for _, s := range d.steps {
		if s.printed {
			continue
		}
		switch s.state {
		case "running":
			live = append(live, s)
			continue
		case "cached":
			fmt.Fprintf(&b, " => CACHED %s\n", s.name)
		case "done":
			fmt.Fprintf(&b, " => %s %6.1fs\n", s.name, s.dur.Seconds())
		case "canceled":
			fmt.Fprintf(&b, " => CANCELED %s %6.1fs\n", s.name, s.dur.Seconds())
		case "error":
			fmt.Fprintf(&b, " => ERROR %s %6.1fs\n", s.name, s.dur.Seconds())
			for _, l := range s.tail {
				fmt.Fprintf(&b, " => => %s\n", truncate(l, 160))
			}
		}
		s.printed = true
	}
	fmt.Fprintf(&b, "[+] Building %.1fs (%d steps)\n", time.Since(d.start).Seconds(), len(d.steps))
	d.drawn = 1
	for _, s := range live {
		fmt.Fprintf(&b, " => %s %6.1fs\n", s.name, time.Since(s.started).Seconds())
		d.drawn++
		for _, l := range s.tail {
			fmt.Fprintf(&b, " => => %s\n", truncate(l, 120))
			d.drawn++
		}
	}
	if final {
		d.drawn = 0
	}
	io.WriteString(d.w, b.String())
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Close stops redrawing and leaves the final state on screen.
func (d *ttyDisplay) Close() {
	close(d.done)
	d.stopped.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.redraw(true)
}

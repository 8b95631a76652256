package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-runewidth"
)

// tty is the live view, in the manner of BuildKit's: a header with the time and the
// steps done of those known, a line per step with its state and time, and under each
// running step the last lines of its output. It redraws in place a few times a
// second and never scrolls: every line is cut to the terminal's width (asked at every
// redraw, so a resize is followed) and the block to its height, finished steps
// giving way first; the final frame shows every step. Warnings and notes are printed
// once above the block and scroll away with the terminal's history.
type tty struct {
	w     io.Writer
	size  func() (cols, rows int)
	now   func() time.Time
	start time.Time
	mu    *sync.Mutex // the Printer's: the redraw loop takes it

	steps  []*vertex // in the order first shown
	msgs   []string  // lines to print above the block at the next redraw
	failed bool

	// widths of the lines of the frame on screen, to go back to its top even after
	// the terminal narrowed and wrapped them
	drawn []int

	done    chan struct{}
	stopped sync.WaitGroup
}

// ttyTailLines is how many lines of a running step's output are shown, as BuildKit.
const ttyTailLines = 6

func newTTY(w io.Writer, size func() (int, int), now func() time.Time, refresh time.Duration, mu *sync.Mutex) *tty {
	if refresh <= 0 {
		refresh = 150 * time.Millisecond
	}
	t := &tty{w: w, size: size, now: now, start: now(), mu: mu, done: make(chan struct{})}
	t.stopped.Add(1)
	go t.loop(refresh)
	return t
}

func (t *tty) loop(refresh time.Duration) {
	defer t.stopped.Done()
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.mu.Lock()
			t.redraw(false)
			t.mu.Unlock()
		case <-t.done:
			return
		}
	}
}

func (t *tty) show(v *vertex) {
	if !v.shown {
		v.shown = true
		t.steps = append(t.steps, v)
	}
}

func (t *tty) vertex(v *vertex) {
	t.show(v)
	if v.err != "" && !v.canceled {
		t.failed = true
	}
}

func (t *tty) log(v *vertex, _ int, data []byte, _ time.Time) {
	t.show(v)
	text := v.tailPart + string(data)
	for {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			break
		}
		v.tail = append(v.tail, screenLine(text[:i]))
		text = text[i+1:]
	}
	// A long unended line (a progress bar redrawn with CRs) keeps only what a
	// terminal would still show.
	if len(text) > 4096 {
		text = screenLine(text)
	}
	v.tailPart = text
	if len(v.tail) > ttyTailLines {
		v.tail = append(v.tail[:0], v.tail[len(v.tail)-ttyTailLines:]...)
	}
}

func (t *tty) note(v *vertex, msg string, at time.Time) {
	t.log(v, 1, []byte(msg+"\n"), at)
}

func (t *tty) status(v *vertex, s *status) {
	t.log(v, 1, []byte(s.id+" done\n"), s.completed)
}

func (t *tty) info(msg string, _ time.Time) { t.msgs = append(t.msgs, msg) }
func (t *tty) warn(msg string)              { t.msgs = append(t.msgs, "WARNING: "+msg) }

func (t *tty) close() {
	close(t.done)
	t.stopped.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.redraw(true)
}

// redraw goes back to the top of the frame on screen, prints the pending messages
// there (they stay above), then the new frame, clearing what the old one left below.
// final leaves the frame on screen for good.
func (t *tty) redraw(final bool) {
	cols, rows := t.size()
	if cols <= 0 {
		cols = 80
	}
	if rows <= 0 {
		rows = 24
	}
	var b strings.Builder
	up := 0
	for _, w := range t.drawn {
		up += rowsOf(w, cols)
	}
	if up > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", up)
	}
	b.WriteString("\r")
	for _, m := range t.msgs {
		b.WriteString(m)
		b.WriteString("\x1b[K\n")
	}
	t.msgs = nil
	lines := t.frame(cols-1, rows-1, final)
	t.drawn = t.drawn[:0]
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\x1b[K\n")
		t.drawn = append(t.drawn, runewidth.StringWidth(l))
	}
	b.WriteString("\x1b[J")
	if final {
		t.drawn = nil
	}
	// A write error (the terminal went away) has no one to tell; the build goes on.
	_, _ = io.WriteString(t.w, b.String())
}

// rowsOf is how many terminal rows a line of width w takes at cols columns.
func rowsOf(w, cols int) int {
	if w <= cols {
		return 1
	}
	return (w + cols - 1) / cols
}

// frame is the block's lines, each at most width columns; at most height lines
// unless final.
func (t *tty) frame(width, height int, final bool) []string {
	now := t.now()
	completed := 0
	for _, v := range t.steps {
		if v.done() {
			completed++
		}
	}
	header := fmt.Sprintf("[+] Building %.1fs (%d/%d)", now.Sub(t.start).Seconds(), completed, len(t.steps))
	if final && !t.failed && completed == len(t.steps) {
		header += " FINISHED"
	}

	type entry struct {
		v     *vertex
		lines []string
	}
	entries := make([]entry, 0, len(t.steps))
	total := 1
	for _, v := range t.steps {
		e := entry{v: v, lines: []string{stepLine(v, now, width)}}
		if !v.done() || (final && v.err != "" && !v.canceled) {
			for _, l := range v.tail {
				e.lines = append(e.lines, cut(" => => # "+l, width))
			}
			if p := screenLine(v.tailPart); p != "" && !v.done() {
				e.lines = append(e.lines, cut(" => => # "+p, width))
			}
		}
		total += len(e.lines)
		entries = append(entries, e)
	}
	if !final && total > height {
		// Finished steps give way first, oldest first; then the output lines of
		// running steps; then running steps themselves, oldest first.
		for i := 0; i < len(entries) && total > height; i++ {
			if entries[i].v.done() {
				total -= len(entries[i].lines)
				entries[i].lines = nil
			}
		}
		for i := 0; i < len(entries) && total > height; i++ {
			if n := len(entries[i].lines); n > 1 {
				drop := min(n-1, total-height)
				entries[i].lines = append(entries[i].lines[:1], entries[i].lines[1+drop:]...)
				total -= drop
			}
		}
		for i := 0; i < len(entries) && total > height; i++ {
			if len(entries[i].lines) > 0 {
				total -= len(entries[i].lines)
				entries[i].lines = nil
			}
		}
	}
	out := []string{cut(header, width)}
	for _, e := range entries {
		out = append(out, e.lines...)
	}
	if !final && len(out) > height && height > 0 {
		out = out[:height]
	}
	return out
}

// stepLine is " => [stage 2/4] RUN make                     1.2s": the name cut so
// the time stays at the right edge.
func stepLine(v *vertex, now time.Time, width int) string {
	name := v.name
	switch {
	case v.canceled:
		name = "CANCELED " + name
	case v.err != "":
		name = "ERROR " + name
	case v.cached:
		name = "CACHED " + name
	}
	var d time.Duration
	switch {
	case v.cached:
	case v.done():
		d = v.completed.Sub(v.started)
	default:
		d = now.Sub(v.started)
	}
	secs := d.Seconds()
	if secs < 0.05 {
		secs = 0
	}
	timer := fmt.Sprintf(" %.1fs", secs)
	left := width - len(" => ") - len(timer)
	if left < 8 {
		return cut(" => "+name, width)
	}
	name = cut(name, left)
	pad := left - runewidth.StringWidth(name)
	return " => " + name + strings.Repeat(" ", pad) + timer
}

// errorLogs is where the failed steps' last output goes after the progress.
func (x *tty) errorLogs() io.Writer { return x.w }

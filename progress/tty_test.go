package progress

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"

	"github.com/kiln-build/kiln/solver"
)

// fakeClock advances only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time         { return c.t }
func (c *fakeClock) add(d time.Duration)    { c.t = c.t.Add(d) }
func newClock() *fakeClock                  { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func ttyOf(p *Printer) *tty                 { return p.r.(*tty) }
func (p *Printer) redrawForTest(final bool) { p.mu.Lock(); ttyOf(p).redraw(final); p.mu.Unlock() }
func countPrefix(lines []string, pre string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, pre) {
			n++
		}
	}
	return n
}

// newTestTTY is a tty Printer on a vt of cols × rows that redraws only when told.
func newTestTTY(cols, rows int) (*Printer, *vt, *fakeClock, *int) {
	term := newVT(cols, rows)
	clock := newClock()
	width := cols
	p := New(TTY, term, Options{
		Size:    func() (int, int) { return width, rows },
		Now:     clock.now,
		Refresh: time.Hour,
	})
	return p, term, clock, &width
}

// A build of many steps with long names and chatty output, redrawn after every
// event, leaves exactly one header on the terminal at every width, nothing in the
// scrollback while it runs, and no line wider than the terminal.
func TestTTYNeverScrolls(t *testing.T) {
	for _, cols := range []int{40, 80, 200} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			p, term, clock, _ := newTestTTY(cols, 24)
			check := func(when string) {
				t.Helper()
				lines := term.lines()
				if n := countPrefix(lines, "[+] Building"); n != 1 {
					t.Fatalf("%s: %d headers on the terminal:\n%s", when, n, strings.Join(lines, "\n"))
				}
				// Warnings are printed once above the view and scroll away with
				// the terminal's history; nothing of the view itself may.
				for _, l := range term.history {
					if !strings.HasPrefix(l, "WARNING: ") {
						t.Fatalf("%s: the live view scrolled %q off the screen", when, l)
					}
				}
				for _, l := range term.lines() {
					if w := runewidth.StringWidth(l); w > cols-1 {
						t.Fatalf("%s: a line of %d columns on a %d-column terminal: %q", when, w, cols, l)
					}
				}
				if len(term.unknown) > 0 {
					t.Fatalf("%s: unexpected control sequences %q", when, term.unknown)
				}
			}
			long := strings.Repeat("very-long-argument ", 8)
			for i := 1; i <= 30; i++ {
				name := fmt.Sprintf("[stage-0 %d/30] RUN ./step.sh %d %s", i, i, long)
				p.Event(solver.Event{Kind: solver.StepStarted, ID: i, Name: name, Time: clock.now()})
				clock.add(100 * time.Millisecond)
				p.Event(solver.Event{Kind: solver.StepLog, ID: i, Data: []byte("compiling " + long + "\n\tindented\x1b[31m red\x1b[0m\n")})
				p.Event(solver.Event{Kind: solver.StepLog, ID: i, Data: []byte("Progress: 10%\rProgress: 55%")})
				p.redrawForTest(false)
				check(fmt.Sprintf("step %d running", i))
				if i%3 == 0 {
					p.Warn(fmt.Sprintf("warning %d", i))
				}
				p.Event(solver.Event{Kind: solver.StepDone, ID: i, Duration: 100 * time.Millisecond})
				p.redrawForTest(false)
			}
			p.Close()
			lines := term.lines()
			if n := countPrefix(lines, "[+] Building"); n != 1 {
				t.Fatalf("final: %d headers:\n%s", n, strings.Join(lines, "\n"))
			}
			var header string
			for _, l := range lines {
				if strings.HasPrefix(l, "[+] Building") {
					header = l
				}
			}
			if !strings.HasSuffix(header, "(30/30) FINISHED") {
				t.Errorf("final header %q, want (30/30) FINISHED", header)
			}
			if n := countPrefix(lines, " => [stage-0 "); n != 30 {
				t.Errorf("final frame shows %d of 30 steps:\n%s", n, strings.Join(lines, "\n"))
			}
			if n := countPrefix(lines, "WARNING: warning "); n != 10 {
				t.Errorf("%d of 10 warnings shown", n)
			}
		})
	}
}

// The header is the first line of the view, above the steps.
func TestTTYHeaderOnTop(t *testing.T) {
	p, term, clock, _ := newTestTTY(80, 24)
	p.Event(solver.Event{Kind: solver.StepStarted, ID: 1, Name: "[1/2] FROM busybox", Time: clock.now()})
	p.Event(solver.Event{Kind: solver.StepCached, ID: 2, Name: "[2/2] RUN true"})
	clock.add(1500 * time.Millisecond)
	p.redrawForTest(false)
	lines := term.lines()
	want := []string{
		"[+] Building 1.5s (1/2)",
		" => [1/2] FROM busybox" + strings.Repeat(" ", 79-len(" => [1/2] FROM busybox")-len(" 1.5s")) + " 1.5s",
		" => CACHED [2/2] RUN true" + strings.Repeat(" ", 79-len(" => CACHED [2/2] RUN true")-len(" 0.0s")) + " 0.0s",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("screen:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// Output redrawn with carriage returns (apt's and curl's progress) shows as a
// terminal would: its latest state, with the step's prefix.
func TestTTYCarriageReturnLines(t *testing.T) {
	p, term, clock, _ := newTestTTY(80, 24)
	p.Event(solver.Event{Kind: solver.StepStarted, ID: 1, Name: "RUN apt-get install", Time: clock.now()})
	p.Event(solver.Event{Kind: solver.StepLog, ID: 1, Data: []byte("Reading database ... 5%\rReading database ... 100%\r\nUnpacking ")})
	p.Event(solver.Event{Kind: solver.StepLog, ID: 1, Data: []byte("[  0%]\r[ 40%]\r")})
	p.redrawForTest(false)
	lines := term.lines()
	want := []string{" => => # Reading database ... 100%", " => => # [ 40%]"}
	if len(lines) != 4 || lines[2] != want[0] || lines[3] != want[1] {
		t.Errorf("screen:\n%s\nwant lines 3-4:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// More running output than the terminal has rows: the view stays within the
// screen, finished steps and old output lines giving way first; the final frame
// shows every step.
func TestTTYFitsTheHeight(t *testing.T) {
	p, term, clock, _ := newTestTTY(80, 10)
	for i := 1; i <= 12; i++ {
		p.Event(solver.Event{Kind: solver.StepStarted, ID: i, Name: fmt.Sprintf("step %d", i), Time: clock.now()})
		if i <= 8 {
			p.Event(solver.Event{Kind: solver.StepDone, ID: i, Duration: time.Second})
		}
	}
	for i := 9; i <= 12; i++ {
		p.Event(solver.Event{Kind: solver.StepLog, ID: i, Data: []byte("a\nb\nc\n")})
	}
	p.redrawForTest(false)
	lines := term.lines()
	if len(term.history) != 0 || len(lines) > 9 {
		t.Fatalf("%d lines on a 10-row terminal (history %d):\n%s", len(lines), len(term.history), strings.Join(lines, "\n"))
	}
	for i := 9; i <= 12; i++ {
		if countPrefix(lines, fmt.Sprintf(" => step %d ", i)) != 1 {
			t.Errorf("running step %d is not shown:\n%s", i, strings.Join(lines, "\n"))
		}
	}
	p.Close()
	if n := countPrefix(term.lines(), " => step "); n != 12 {
		t.Errorf("final frame shows %d of 12 steps", n)
	}
}

// After the terminal narrows (and reflows the old frame), the next frame starts at
// the old frame's top: still one header, nothing stale.
func TestTTYResize(t *testing.T) {
	p, term, clock, width := newTestTTY(120, 30)
	for i := 1; i <= 4; i++ {
		p.Event(solver.Event{Kind: solver.StepStarted, ID: i, Name: fmt.Sprintf("[%d/4] RUN %s", i, strings.Repeat("x", 90)), Time: clock.now()})
	}
	p.redrawForTest(false)
	term.resize(50)
	*width = 50
	p.redrawForTest(false)
	lines := term.lines()
	if n := countPrefix(lines, "[+] Building"); n != 1 {
		t.Fatalf("%d headers after a resize:\n%s", n, strings.Join(lines, "\n"))
	}
	if len(lines) != 5 {
		t.Errorf("after the resize the screen has %d lines, want header and 4 steps:\n%s", len(lines), strings.Join(lines, "\n"))
	}
}

// A failed step shows ERROR and its last output in the final frame, and the header
// does not say FINISHED; a cancelled one shows CANCELED.
func TestTTYFailure(t *testing.T) {
	p, term, clock, _ := newTestTTY(80, 24)
	p.Event(solver.Event{Kind: solver.StepStarted, ID: 1, Name: "RUN make", Time: clock.now()})
	p.Event(solver.Event{Kind: solver.StepStarted, ID: 2, Name: "RUN sleep 9", Time: clock.now()})
	p.Event(solver.Event{Kind: solver.StepLog, ID: 1, Data: []byte("main.c:1: error\n")})
	p.Event(solver.Event{Kind: solver.StepFailed, ID: 1, Message: "exit code 2"})
	p.Event(solver.Event{Kind: solver.StepFailed, ID: 2, Message: errors.New("run: interrupt signal received").Error(), Canceled: true})
	p.Close()
	got := strings.Join(term.lines(), "\n")
	for _, want := range []string{"[+] Building 0.0s (2/2)\n", " => ERROR RUN make", " => => # main.c:1: error", " => CANCELED RUN sleep 9"} {
		if !strings.Contains(got, want) {
			t.Errorf("final screen lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "FINISHED") {
		t.Errorf("a failed build says FINISHED:\n%s", got)
	}
}

func TestScreenLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\rb", "b"},
		{"10%\r20%\r", "20%"},
		{"\x1b[1;31mred\x1b[0m text", "red text"},
		{"\x1b]0;title\x07after", "after"},
		{"a\tb", "a       b"},
		{"bell\a and nul\x00", "bell and nul"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	} {
		if got := screenLine(c.in); got != c.want {
			t.Errorf("screenLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

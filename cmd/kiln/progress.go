package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/solver"
)

// progress renders solver events. plain writes every event as a line, like BuildKit's
// --progress=plain ("#5 [stage 2/3] RUN make", "#5 0.412 output", "#5 DONE 0.5s");
// tty is the live view of ttyDisplay; quiet writes nothing but warnings.
type progress struct {
	mode  string
	w     io.Writer
	start time.Time

	mu      sync.Mutex
	started map[int]time.Time
	tty     *ttyDisplay
}

func newProgress(mode string, w io.Writer) *progress {
	p := &progress{mode: mode, w: w, start: time.Now(), started: map[int]time.Time{}}
	if mode == "tty" {
		p.tty = newTTYDisplay(w)
	}
	return p
}

func (o buildOptions) progressMode(stderr io.Writer) string {
	switch o.progress {
	case "plain", "tty", "quiet", "rawjson":
		if o.progress == "rawjson" {
			return "plain"
		}
		return o.progress
	}
	if isTerminal(stderr) {
		return "tty"
	}
	return "plain"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func hostArch() string { return runtime.GOARCH }

// Event is the solver.Progress func.
func (p *progress) Event(e solver.Event) {
	if p.mode == "quiet" {
		return
	}
	if p.tty != nil {
		p.tty.Event(e)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plain(e)
}

func (p *progress) plain(e solver.Event) {
	switch e.Kind {
	case solver.StepStarted:
		p.started[e.ID] = e.Time
		fmt.Fprintf(p.w, "#%d %s\n", e.ID, e.Name)
	case solver.StepCached:
		fmt.Fprintf(p.w, "#%d %s\n#%d CACHED\n", e.ID, e.Name, e.ID)
	case solver.StepInfo:
		fmt.Fprintf(p.w, "#%d %s\n", e.ID, e.Message)
	case solver.StepLog:
		since := time.Since(p.started[e.ID]).Seconds()
		for _, line := range strings.SplitAfter(string(e.Data), "\n") {
			if line == "" {
				continue
			}
			fmt.Fprintf(p.w, "#%d %.3f %s", e.ID, since, strings.TrimSuffix(line, "\n")+"\n")
		}
	case solver.StepDone:
		fmt.Fprintf(p.w, "#%d DONE %.1fs\n", e.ID, e.Duration.Seconds())
	case solver.StepFailed:
		fmt.Fprintf(p.w, "#%d ERROR: %s\n", e.ID, firstLineOf(e.Message))
	case solver.StepCanceled:
		fmt.Fprintf(p.w, "#%d CANCELED\n", e.ID)
	}
}

// Warn prints a warning in every mode.
func (p *progress) Warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "WARNING: %s\n", msg)
}

// Info prints a note (push progress) unless quiet.
func (p *progress) Info(msg string) {
	if p.mode == "quiet" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, " => %s\n", msg)
}

// Close stops the live display, leaving its last state on screen.
func (p *progress) Close() {
	if p.tty != nil {
		p.tty.Close()
	}
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

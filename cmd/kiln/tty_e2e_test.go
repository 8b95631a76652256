package main

import (
	"flag"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/kiln-build/kiln/internal/testenv"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the tty golden screens in testdata/tty")

// tmuxSession is kiln running in a terminal: a detached tmux session of its own
// server (its own socket), killed when the test ends.
type tmuxSession struct {
	t      *testing.T
	socket string
}

// startTmux runs kiln with args in dir, in a cols × rows terminal.
func startTmux(t *testing.T, cols, rows int, dir string, args ...string) *tmuxSession {
	t.Helper()
	if _, err := osexec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed for the terminal tests (scripts/install-deps.sh installs it): %v", err)
	}
	script := filepath.Join(t.TempDir(), "run.sh")
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	// The shell traps SIGINT (so Ctrl-C reaches kiln and the pane outlives it)
	// rather than ignoring it, which kiln would inherit.
	body := fmt.Sprintf("#!/bin/sh\ntrap : INT\ncd '%s'\nKILN_E2E_MAIN=1 '%s' %s\necho \"KILN-EXIT=$?\"\nexec sleep 600\n",
		dir, os.Args[0], strings.Join(quoted, " "))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &tmuxSession{t: t, socket: fmt.Sprintf("kiln-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() { _ = osexec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	s.tmux("-f", "/dev/null", "new-session", "-d", "-s", "k", "-x", fmt.Sprint(cols), "-y", fmt.Sprint(rows), script)
	s.tmux("set-option", "-t", "k", "history-limit", "5000")
	return s
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := osexec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// screen is the pane's scrollback and screen, trailing blank lines cut.
func (s *tmuxSession) screen() string { return s.capture("-S", "-", "-E", "-") }

// visible is the pane's screen only, row by row (rows the terminal marked as
// continuing the one above, when it reflowed an old frame, are not joined to it).
func (s *tmuxSession) visible() string {
	s.t.Helper()
	return s.capture()
}

func (s *tmuxSession) capture(args ...string) string {
	s.t.Helper()
	if len(args) > 0 {
		args = append(args, "-J")
	}
	out := s.tmux(append([]string{"capture-pane", "-p", "-t", "k"}, args...)...)
	lines := strings.Split(out, "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// waitFor polls the screen until it contains want.
func (s *tmuxSession) waitFor(want string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		scr := s.screen()
		if strings.Contains(scr, want) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q on the terminal after %v:\n%s", want, timeout, scr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// busyboxLayout writes the busybox test image as an OCI layout, for a FROM whose
// name (and so every screen) is the same in every run.
func busyboxLayout(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "busybox")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(testenv.BusyboxImage(t)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// timesOnScreen are the durations the view shows; digits masked, the width kept.
var timesOnScreen = regexp.MustCompile(`\d+\.\ds`)

func maskTimes(s string) string {
	return timesOnScreen.ReplaceAllStringFunc(s, func(m string) string {
		return regexp.MustCompile(`\d`).ReplaceAllString(m, "9")
	})
}

func countLinesWithPrefix(screen, prefix string) int {
	n := 0
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// The live view in a real terminal at 40, 80 and 200 columns: a build with a step
// name wider than the terminal and output redrawn with carriage returns ends with one
// header on top, every line within the width, and exactly the golden screen (times
// masked). Run with -update-golden to rewrite testdata/tty after a deliberate change.
func TestTTYViewInTmux(t *testing.T) {
	testenv.RequireRoot(t)
	bb := busyboxLayout(t)
	dir := project(t, map[string]string{
		"Dockerfile": "FROM busybox\n" +
			"RUN echo 'a step whose title is wider than a narrow terminal can show' && sleep 0.4\n" +
			"RUN printf 'get  10%%\\rget  60%%\\rget 100%%\\n'; for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.05; done\n" +
			"COPY f /f\n",
		"f": "x\n",
	})
	for _, cols := range []int{40, 80, 200} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			root, out := e2e(t)
			s := startTmux(t, cols, 30, dir, "build", "--root", root, "--progress", "tty",
				"--build-context", "busybox=oci-layout://"+bb, "-o", "type=oci,dest="+filepath.Join(out, "img.tar"), ".")
			scr := s.waitFor("KILN-EXIT=", 2*time.Minute)
			if !strings.Contains(scr, "KILN-EXIT=0") {
				t.Fatalf("kiln failed:\n%s", scr)
			}
			if n := countLinesWithPrefix(scr, "[+] Building"); n != 1 {
				t.Errorf("%d headers on the terminal, want 1:\n%s", n, scr)
			}
			for _, l := range strings.Split(scr, "\n") {
				if len([]rune(l)) >= cols {
					t.Errorf("a line as wide as the terminal (%d columns), so it wrapped: %q", cols, l)
				}
			}
			got := maskTimes(strings.TrimSuffix(scr[:strings.Index(scr, "KILN-EXIT=")], "\n")) + "\n"
			golden := filepath.Join("testdata", "tty", fmt.Sprintf("build-%d.golden", cols))
			if *updateGolden {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update-golden to write it)", err)
			}
			if got != string(want) {
				t.Errorf("screen at %d columns:\n%s\nwant (%s):\n%s", cols, got, golden, want)
			}
		})
	}
}

// Ctrl-C in the middle of a step: the view ends with its header intact and the step
// CANCELED, and kiln says it was interrupted, below the view.
func TestTTYInterruptInTmux(t *testing.T) {
	testenv.RequireRoot(t)
	bb := busyboxLayout(t)
	root, _ := e2e(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
	s := startTmux(t, 80, 30, dir, "build", "--root", root, "--progress", "tty",
		"--build-context", "busybox=oci-layout://"+bb, ".")
	s.waitFor("# started", time.Minute)
	s.tmux("send-keys", "-t", "k", "C-c")
	scr := s.waitFor("KILN-EXIT=", time.Minute)
	if n := countLinesWithPrefix(scr, "[+] Building"); n != 1 {
		t.Errorf("%d headers after Ctrl-C, want 1:\n%s", n, scr)
	}
	// The header is the view's first line (the warning that the build has no
	// output is printed above the view).
	if h, step := strings.Index(scr, "[+] Building"), strings.Index(scr, " => "); h < 0 || step < h {
		t.Errorf("the header is not the first line of the view after Ctrl-C:\n%s", scr)
	}
	if !strings.Contains(scr, " => CANCELED [2/2] RUN echo started; sleep 60") {
		t.Errorf("the interrupted step is not shown CANCELED:\n%s", scr)
	}
	if strings.Contains(scr, "KILN-EXIT=0") {
		t.Errorf("an interrupted build exited 0:\n%s", scr)
	}
	noKilnMounts(t, root)
}

// The terminal narrows while a step runs: the next frames start at the old frame's
// top, so the screen ends with one header and one line per step, nothing stale.
// (What the terminal itself pushed into its scrollback while reflowing the old frame
// is out of any program's reach: only the screen is checked.)
func TestTTYResizeInTmux(t *testing.T) {
	testenv.RequireRoot(t)
	bb := busyboxLayout(t)
	root, _ := e2e(t)
	long := strings.Repeat("x", 70)
	dir := project(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo " + long + "; sleep 2\nRUN echo done-" + long + "\n"})
	s := startTmux(t, 120, 30, dir, "build", "--root", root, "--progress", "tty",
		"--build-context", "busybox=oci-layout://"+bb, ".")
	s.waitFor("# "+long, time.Minute)
	s.tmux("resize-window", "-t", "k", "-x", "50")
	s.waitFor("KILN-EXIT=", time.Minute)
	scr := s.visible()
	if n := countLinesWithPrefix(scr, "[+] Building"); n != 1 {
		t.Errorf("%d headers after a resize, want 1:\n%s", n, scr)
	}
	if n := countLinesWithPrefix(scr, " => [2/3] RUN echo xxx"); n != 1 {
		t.Errorf("the running step is on the screen %d times, want once:\n%s", n, scr)
	}
	if !strings.HasPrefix(scr, "[+] Building") {
		t.Errorf("the screen does not start with the header:\n%s", scr)
	}
}

package progress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/solver"
)

// The plain shapes, as BuildKit's printer writes them, event by event.
func TestPlain(t *testing.T) {
	type call func(p *Printer, c *fakeClock)
	ev := func(e solver.Event) call { return func(p *Printer, c *fakeClock) { e.Time = c.now(); p.Event(e) } }
	wait := func(d time.Duration) call { return func(_ *Printer, c *fakeClock) { c.add(d) } }
	for _, tc := range []struct {
		name  string
		calls []call
		want  string
	}{{
		name: "numbers are contiguous and a FROM of a stage shows nothing",
		calls: []call{
			ev(solver.Event{Kind: solver.StepDone, ID: 1, Name: "[b 1/2] FROM a"}), // never started
			ev(solver.Event{Kind: solver.StepStarted, ID: 3, Name: "[b 2/2] RUN x"}),
			wait(1500 * time.Millisecond),
			ev(solver.Event{Kind: solver.StepDone, ID: 3, Duration: 1500 * time.Millisecond}),
			ev(solver.Event{Kind: solver.StepCached, ID: 7, Name: "[c 2/2] COPY y"}),
		},
		want: "#1 [b 2/2] RUN x\n#1 DONE 1.5s\n\n#2 [c 2/2] COPY y\n#2 CACHED\n",
	}, {
		name: "output lines carry the seconds since the step started; an unended line waits",
		calls: []call{
			ev(solver.Event{Kind: solver.StepStarted, ID: 1, Name: "RUN a"}),
			wait(250 * time.Millisecond),
			ev(solver.Event{Kind: solver.StepLog, ID: 1, Data: []byte("one\ntw")}),
			ev(solver.Event{Kind: solver.StepLog, ID: 1, Data: []byte("o\n")}),
			ev(solver.Event{Kind: solver.StepLog, ID: 1, Data: []byte("three")}),
			ev(solver.Event{Kind: solver.StepDone, ID: 1, Duration: time.Second}),
		},
		want: "#1 RUN a\n#1 0.250 one\n#1 0.250 two\n#1 0.250 three\n#1 DONE 1.0s\n",
	}, {
		name: "interleaved steps: the one left says ... and its header comes back",
		calls: []call{
			ev(solver.Event{Kind: solver.StepStarted, ID: 1, Name: "RUN a"}),
			ev(solver.Event{Kind: solver.StepStarted, ID: 2, Name: "RUN b"}),
			ev(solver.Event{Kind: solver.StepLog, ID: 1, Data: []byte("from a\n")}),
			ev(solver.Event{Kind: solver.StepDone, ID: 2, Duration: time.Second}),
			ev(solver.Event{Kind: solver.StepDone, ID: 1, Duration: 2 * time.Second}),
		},
		want: "#1 RUN a\n#1 ...\n\n#2 RUN b\n#2 ...\n\n#1 RUN a\n#1 0.000 from a\n#1 ...\n\n#2 RUN b\n#2 DONE 1.0s\n\n#1 RUN a\n#1 DONE 2.0s\n",
	}, {
		name: "a miss note, an error, a cancel",
		calls: []call{
			ev(solver.Event{Kind: solver.StepStarted, ID: 1, Name: "RUN a"}),
			ev(solver.Event{Kind: solver.StepInfo, ID: 1, Message: "cache miss: RUN a (a previous step changed)"}),
			wait(100 * time.Millisecond),
			ev(solver.Event{Kind: solver.StepLog, ID: 1, Data: []byte("l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\nl11\nno newline")}),
			ev(solver.Event{Kind: solver.StepFailed, ID: 1, Message: "process \"/bin/sh -c a\" did not complete successfully: exit code: 1\nmore"}),
			ev(solver.Event{Kind: solver.StepStarted, ID: 2, Name: "RUN b"}),
			ev(solver.Event{Kind: solver.StepFailed, ID: 2, Message: "run: context canceled", Canceled: true}),
		},
		want: "#1 RUN a\n#1 cache miss: RUN a (a previous step changed)\n" +
			"#1 0.100 l1\n#1 0.100 l2\n#1 0.100 l3\n#1 0.100 l4\n#1 0.100 l5\n#1 0.100 l6\n#1 0.100 l7\n#1 0.100 l8\n#1 0.100 l9\n#1 0.100 l10\n#1 0.100 l11\n#1 0.100 no newline\n" +
			"#1 ERROR: process \"/bin/sh -c a\" did not complete successfully: exit code: 1\n\n" +
			"#2 RUN b\n#2 CANCELED\n" +
			// the failed step's last ten lines (not the cancelled one's), below
			"------\n > RUN a:\n0.100 l2\n0.100 l3\n0.100 l4\n0.100 l5\n0.100 l6\n0.100 l7\n0.100 l8\n0.100 l9\n0.100 l10\n0.100 l11\n0.100 no newline\n------\n",
	}, {
		name: "a task with statuses, notes of the build, a warning",
		calls: []call{
			func(p *Printer, _ *fakeClock) { p.Info("sandbox: namespaces, overlay") },
			func(p *Printer, _ *fakeClock) { p.Info("another note") },
			func(p *Printer, c *fakeClock) {
				task := p.Task("exporting to oci image format")
				start := c.now()
				c.add(300 * time.Millisecond)
				task.Status("exporting layers", start)
				task.Status("exporting manifest sha256:abc", time.Time{})
				p.Warn("something odd")
				task.Done(nil)
				p.Task("pushing").Done(errors.New("push: refused\nsecond line"))
			},
		},
		want: "#0 sandbox: namespaces, overlay\n#0 another note\n\n" +
			"#1 exporting to oci image format\n#1 exporting layers 0.3s done\n#1 exporting manifest sha256:abc done\n#1 ...\n" +
			"WARNING: something odd\n\n#1 exporting to oci image format\n#1 DONE 0.3s\n\n" +
			"#2 pushing\n#2 ERROR: push: refused\n" +
			"------\n > pushing:\n------\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			clock := newClock()
			p := New(Plain, &out, Options{Now: clock.now})
			for _, c := range tc.calls {
				c(p, clock)
			}
			p.Close()
			if got := out.String(); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"", "auto", "plain", "tty", "quiet", "rawjson"} {
		if _, err := ParseMode(s); err != nil {
			t.Errorf("ParseMode(%q): %v", s, err)
		}
	}
	_, err := ParseMode("fancy")
	if err == nil || !strings.Contains(err.Error(), "--progress=fancy") || !strings.Contains(err.Error(), "rawjson") {
		t.Errorf("ParseMode(fancy) = %v, want a refusal naming it and the modes", err)
	}
	// auto on something that is no terminal is plain
	if m := Auto.Resolve(&bytes.Buffer{}); m != Plain {
		t.Errorf("auto on a buffer is %s", m)
	}
}

// quiet shows warnings only.
func TestQuiet(t *testing.T) {
	var out bytes.Buffer
	p := New(Quiet, &out, Options{})
	p.Event(solver.Event{Kind: solver.StepStarted, ID: 1, Name: "RUN a"})
	p.Info("note")
	p.Task("exporting").Done(nil)
	p.Warn("w")
	p.Close()
	if out.String() != "WARNING: w\n" {
		t.Errorf("quiet wrote %q", out.String())
	}
}

package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/kiln-build/kiln/solver"
)

// kiln's rawjson is BuildKit's: every line decodes, with unknown fields refused, into
// BuildKit's own client.SolveStatus, and says what happened.
func TestRawJSONIsBuildKitsSolveStatus(t *testing.T) {
	var out bytes.Buffer
	clock := newClock()
	p := New(RawJSON, &out, Options{Now: clock.now})
	p.Event(solver.Event{Kind: solver.StepStarted, ID: 1, Name: "[1/2] RUN make", Time: clock.now()})
	p.Event(solver.Event{Kind: solver.StepLog, ID: 1, Stream: 2, Data: []byte("warning: x\n"), Time: clock.now()})
	p.Event(solver.Event{Kind: solver.StepInfo, ID: 1, Message: "cache miss: RUN make (a previous step changed)"})
	clock.add(time.Second)
	p.Event(solver.Event{Kind: solver.StepDone, ID: 1, Duration: time.Second})
	p.Event(solver.Event{Kind: solver.StepCached, ID: 2, Name: "[2/2] COPY a /a"})
	p.Event(solver.Event{Kind: solver.StepStarted, ID: 3, Name: "RUN false", Time: clock.now()})
	p.Event(solver.Event{Kind: solver.StepFailed, ID: 3, Message: "exit code: 1"})
	task := p.Task("exporting to oci image format")
	task.Status("exporting manifest sha256:abc", time.Time{})
	task.Done(nil)
	p.Info("sandbox: namespaces")
	p.Warn("odd")
	p.Close()

	var statuses []client.SolveStatus
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var s client.SolveStatus
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("line %q is not a SolveStatus: %v", sc.Text(), err)
		}
		statuses = append(statuses, s)
	}
	vertexes := map[string]*client.Vertex{}
	var logs []string
	var statusIDs []string
	var warnings []string
	for _, s := range statuses {
		for _, v := range s.Vertexes {
			if v.Digest == "" {
				t.Errorf("vertex %q has no digest", v.Name)
			}
			vertexes[v.Name] = v
		}
		for _, l := range s.Logs {
			logs = append(logs, string(l.Data))
		}
		for _, st := range s.Statuses {
			statusIDs = append(statusIDs, st.ID)
		}
		for _, w := range s.Warnings {
			warnings = append(warnings, string(w.Short))
		}
	}
	if v := vertexes["[1/2] RUN make"]; v == nil || v.Started == nil || v.Completed == nil || v.Completed.Sub(*v.Started) != time.Second || v.Error != "" {
		t.Errorf("RUN make: %+v", v)
	}
	if v := vertexes["[2/2] COPY a /a"]; v == nil || !v.Cached || v.Completed == nil {
		t.Errorf("COPY: %+v", v)
	}
	if v := vertexes["RUN false"]; v == nil || v.Error != "exit code: 1" {
		t.Errorf("RUN false: %+v", v)
	}
	if v := vertexes["exporting to oci image format"]; v == nil || v.Completed == nil {
		t.Errorf("export task: %+v", v)
	}
	if vertexes["[1/2] RUN make"].Digest == vertexes["RUN false"].Digest {
		t.Error("two vertices share a digest")
	}
	wantLogs := []string{"warning: x\n", "cache miss: RUN make (a previous step changed)\n"}
	if len(logs) != 2 || logs[0] != wantLogs[0] || logs[1] != wantLogs[1] {
		t.Errorf("logs %q, want %q", logs, wantLogs)
	}
	if len(statusIDs) != 2 || statusIDs[0] != "exporting manifest sha256:abc" || statusIDs[1] != "sandbox: namespaces" {
		t.Errorf("statuses %q", statusIDs)
	}
	if len(warnings) != 1 || warnings[0] != "odd" {
		t.Errorf("warnings %q", warnings)
	}
}

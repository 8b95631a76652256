package progress

import (
	"encoding/json"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// rawJSON writes BuildKit's SolveStatus, one JSON object per line per update, as
// `buildctl --progress=rawjson` and `docker buildx build --progress=rawjson` do, so
// tools that read theirs read kiln's.
//
// The types below are BuildKit's client.SolveStatus field for field (names and JSON
// tags); a test decodes kiln's output with BuildKit's own type. kiln does not import
// that package because it links BuildKit's gRPC client: 21 MB more binary, 44 modules.
type rawJSON struct {
	w io.Writer
}

type solveStatus struct {
	Vertexes []*rawVertex  `json:"vertexes,omitempty"`
	Statuses []*rawStatus  `json:"statuses,omitempty"`
	Logs     []*rawLog     `json:"logs,omitempty"`
	Warnings []*rawWarning `json:"warnings,omitempty"`
}

type rawVertex struct {
	Digest    digest.Digest   `json:"digest,omitempty"`
	Inputs    []digest.Digest `json:"inputs,omitempty"`
	Name      string          `json:"name,omitempty"`
	Started   *time.Time      `json:"started,omitempty"`
	Completed *time.Time      `json:"completed,omitempty"`
	Cached    bool            `json:"cached,omitempty"`
	Error     string          `json:"error,omitempty"`
}

type rawStatus struct {
	ID        string        `json:"id"`
	Vertex    digest.Digest `json:"vertex,omitempty"`
	Name      string        `json:"name,omitempty"`
	Total     int64         `json:"total,omitempty"`
	Current   int64         `json:"current"`
	Timestamp time.Time     `json:"timestamp"`
	Started   *time.Time    `json:"started,omitempty"`
	Completed *time.Time    `json:"completed,omitempty"`
}

type rawLog struct {
	Vertex    digest.Digest `json:"vertex,omitempty"`
	Stream    int           `json:"stream,omitempty"`
	Data      []byte        `json:"data"`
	Timestamp time.Time     `json:"timestamp"`
}

type rawWarning struct {
	Vertex digest.Digest `json:"vertex,omitempty"`
	Level  int           `json:"level,omitempty"`
	Short  []byte        `json:"short,omitempty"`
}

func (r *rawJSON) emit(s solveStatus) {
	// A write error (a closed pipe) is the reader's business; the build goes on.
	_ = json.NewEncoder(r.w).Encode(s)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (r *rawJSON) vertex(v *vertex) {
	rv := &rawVertex{Digest: v.digest, Name: v.name, Started: timePtr(v.started),
		Completed: timePtr(v.completed), Cached: v.cached, Error: v.err}
	if v.canceled {
		rv.Error = "context canceled"
	}
	r.emit(solveStatus{Vertexes: []*rawVertex{rv}})
}

func (r *rawJSON) log(v *vertex, stream int, data []byte, at time.Time) {
	if stream == 0 {
		stream = 1
	}
	r.emit(solveStatus{Logs: []*rawLog{{Vertex: v.digest, Stream: stream, Data: data, Timestamp: at}}})
}

// note is a line of the step's own: BuildKit would print it as the step's output.
func (r *rawJSON) note(v *vertex, msg string, at time.Time) {
	r.emit(solveStatus{Logs: []*rawLog{{Vertex: v.digest, Stream: 1, Data: []byte(msg + "\n"), Timestamp: at}}})
}

func (r *rawJSON) status(v *vertex, s *status) {
	r.emit(solveStatus{Statuses: []*rawStatus{{ID: s.id, Vertex: v.digest, Timestamp: s.timestamp,
		Started: timePtr(s.started), Completed: timePtr(s.completed)}}})
}

// info is a status of no vertex, as BuildKit reports remote cache loading.
func (r *rawJSON) info(msg string, at time.Time) {
	r.emit(solveStatus{Statuses: []*rawStatus{{ID: msg, Timestamp: at, Started: &at, Completed: &at}}})
}

func (r *rawJSON) warn(msg string) {
	r.emit(solveStatus{Warnings: []*rawWarning{{Level: 1, Short: []byte(msg)}}})
}

func (r *rawJSON) close() {}

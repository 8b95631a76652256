package provenance

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/llbsolver/provenance/types"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func sampleSources() Sources {
	amd := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	return Sources{
		Images: []Image{
			{Ref: "docker.io/library/golang:1.23", Platform: amd, Digest: "sha256:" + strings.Repeat("a", 64)},
			{Ref: "docker.io/library/alpine:3.20", Platform: amd, Digest: "sha256:" + strings.Repeat("b", 64)},
		},
		Git:          []Git{{URL: "https://example.com/repo.git", Commit: strings.Repeat("c", 40)}},
		HTTP:         []HTTP{{URL: "https://example.com/f.tgz", Digest: "sha256:" + strings.Repeat("d", 64)}},
		Locals:       []string{"context", "dockerfile"},
		ContextReads: []string{"sha256:2", "sha256:1"},
		Secrets:      []string{"npmrc"},
		Steps: []Step{
			{ID: "base-golang", Source: "docker-image://docker.io/library/golang:1.23@sha256:aaa", Line: 1},
			{ID: "run1", Inputs: []string{"base-golang"}, Exec: &Exec{Args: []string{"/bin/sh", "-c", "go build"}, Cwd: "/src"}, Line: 2},
			{ID: "base-alpine", Source: "docker-image://docker.io/library/alpine:3.20@sha256:bbb", Line: 3},
			{ID: "local://context", Source: "local://context"},
			{ID: "copy1", Inputs: []string{"base-alpine", "local://context"}, Copy: &Copy{Sources: []string{"app"}, Dest: "/app"}, Line: 4},
		},
	}
}

func sampleRequest() Request {
	epoch := time.Unix(1700000000, 0)
	return Request{
		Args:           map[string]string{"build-arg:FOO": "bar", "label:team": "x", "target": "app"},
		DockerfileName: "Dockerfile", Dockerfile: []byte("FROM golang\n"),
		BuilderPlatform: "linux/amd64", BuilderVersion: "test", Epoch: &epoch,
	}
}

func encode(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The predicate does not depend on the order concurrent stages recorded things in,
// and with an epoch it holds no wall-clock time.
func TestPredicateIsCanonical(t *testing.T) {
	o := Options{Mode: ModeMax, Version: "v1"}
	a, err := Predicate(o, sampleRequest(), sampleSources())
	if err != nil {
		t.Fatal(err)
	}
	src := sampleSources()
	src.Images[0], src.Images[1] = src.Images[1], src.Images[0]
	src.Steps[1], src.Steps[2] = src.Steps[2], src.Steps[1]
	src.ContextReads[0], src.ContextReads[1] = src.ContextReads[1], src.ContextReads[0]
	req := sampleRequest()
	req.StartedOn, req.FinishedOn = time.Now(), time.Now() // ignored: the epoch wins
	b, err := Predicate(o, req, src)
	if err != nil {
		t.Fatal(err)
	}
	if encode(t, a) != encode(t, b) {
		t.Errorf("the predicate depends on the recording order:\n%s\n%s", encode(t, a), encode(t, b))
	}
	p := a.(*types.ProvenancePredicateSLSA1)
	if got := p.RunDetails.Metadata.StartedOn.Unix(); got != 1700000000 {
		t.Errorf("startedOn %d, want the epoch", got)
	}
	deps := p.BuildDefinition.ResolvedDependencies
	if len(deps) != 5 || !strings.HasPrefix(deps[0].URI, "pkg:docker/alpine@3.20") || deps[2].Digest["sha1"] == "" || deps[4].Name != "context" {
		t.Errorf("resolved dependencies %s", encode(t, deps))
	}
	steps := p.BuildDefinition.InternalParameters.BuildConfig.Definition
	// The copy reads alpine and the context, both listed before it.
	last := steps[len(steps)-1]
	if last.Op.GetFile() == nil || len(last.Inputs) != 2 {
		t.Errorf("last step %s", encode(t, last))
	}
	if len(p.BuildDefinition.ExternalParameters.Request.Secrets) != 1 {
		t.Errorf("max mode drops the secrets' ids")
	}
}

// min leaves out build args, labels, secrets and the steps, and says the request
// is incomplete; v0.2 converts.
func TestPredicateMinAndV02(t *testing.T) {
	p, err := Predicate(Options{Mode: ModeMin, Version: "v1"}, sampleRequest(), sampleSources())
	if err != nil {
		t.Fatal(err)
	}
	pr := p.(*types.ProvenancePredicateSLSA1)
	req := pr.BuildDefinition.ExternalParameters.Request
	if _, ok := req.Args["build-arg:FOO"]; ok || req.Args["target"] != "app" || req.Secrets != nil {
		t.Errorf("min request %s", encode(t, req))
	}
	if pr.BuildDefinition.InternalParameters.BuildConfig != nil || pr.RunDetails.Metadata.Completeness.Request {
		t.Errorf("min keeps the steps or claims a complete request")
	}
	o := Options{Mode: ModeMax, Version: "v0.2"}
	if o.PredicateType() != "https://slsa.dev/provenance/v0.2" {
		t.Errorf("v0.2 predicate type %s", o.PredicateType())
	}
	p2, err := Predicate(o, sampleRequest(), sampleSources())
	if err != nil {
		t.Fatal(err)
	}
	if v := p2.(*types.ProvenancePredicateSLSA02); len(v.Materials) != 5 || v.Invocation.Parameters.Args["build-arg:FOO"] != "bar" {
		t.Errorf("v0.2 %s", encode(t, v))
	}
	for _, bad := range []Options{{Mode: "full9", Version: "v1"}, {Mode: ModeMin, Version: "v3"}} {
		if _, err := Predicate(bad, sampleRequest(), sampleSources()); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

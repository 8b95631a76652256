package main

import (
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	intoto "github.com/in-toto/in-toto-golang/in_toto"
	slsa02 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v0.2"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"
	provtypes "github.com/moby/buildkit/solver/llbsolver/provenance/types"

	"github.com/kiln-build/kiln/internal/testenv"
)

// Issue 20, item 2: provenance attestations stored as BuildKit stores them.

const provenanceDockerfile = `FROM %s AS base
ARG FOO=bar
RUN echo "$FOO" > /x
FROM base
COPY a.txt /a.txt
`

// attested is an image index with one image and its attestation manifest, as
// read back from an OCI layout.
type attested struct {
	index    v1.ImageIndex
	manifest *v1.IndexManifest
	image    v1.Hash // the image manifest's digest
	att      *v1.Manifest
	stmts    []intoto.Statement
	raw      [][]byte // the statements as stored
}

// readAttested opens the single top-level index of an OCI tarball and checks the
// attestation layout BuildKit writes: the image, then an attestation manifest with
// platform unknown/unknown and the reference annotations naming the image.
func readAttested(t *testing.T, tarPath string) attested {
	t.Helper()
	dir := t.TempDir()
	untar(t, tarPath, dir)
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil || len(tm.Manifests) != 1 || tm.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json: %+v (%v); want one image index", tm, err)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return inspectAttested(t, idx)
}

func inspectAttested(t *testing.T, idx v1.ImageIndex) attested {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want the image and its attestation manifest: %+v", len(m.Manifests), m.Manifests)
	}
	img, am := m.Manifests[0], m.Manifests[1]
	if img.Platform == nil || img.Platform.OS != "linux" || len(img.Annotations) != 0 {
		t.Errorf("image descriptor %+v", img)
	}
	if am.Platform == nil || am.Platform.OS != "unknown" || am.Platform.Architecture != "unknown" ||
		am.Annotations["vnd.docker.reference.type"] != "attestation-manifest" ||
		am.Annotations["vnd.docker.reference.digest"] != img.Digest.String() {
		t.Errorf("attestation descriptor %+v", am)
	}
	ai, err := idx.Image(am.Digest)
	if err != nil {
		t.Fatal(err)
	}
	att, err := ai.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if att.ArtifactType != "application/vnd.docker.attestation.manifest.v1+json" ||
		att.Config.MediaType != "application/vnd.oci.empty.v1+json" ||
		att.Subject == nil || att.Subject.Digest != img.Digest {
		t.Errorf("attestation manifest %+v", att)
	}
	a := attested{index: idx, manifest: m, image: img.Digest, att: att}
	for _, ld := range att.Layers {
		if ld.MediaType != "application/vnd.in-toto+json" {
			t.Errorf("attestation layer media type %s", ld.MediaType)
		}
		l, err := ai.LayerByDigest(ld.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		raw := readAllString(t, rc)
		var st intoto.Statement
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatalf("statement: %v", err)
		}
		if st.Type != intoto.StatementInTotoV1 || st.PredicateType != ld.Annotations["in-toto.io/predicate-type"] {
			t.Errorf("statement header %+v, layer annotations %v", st.StatementHeader, ld.Annotations)
		}
		a.stmts = append(a.stmts, st)
		a.raw = append(a.raw, []byte(raw))
	}
	return a
}

func readAllString(t *testing.T, rc interface {
	Read([]byte) (int, error)
	Close() error
}) string {
	t.Helper()
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// slsa1Predicate decodes a statement's predicate into BuildKit's own type.
func slsa1Predicate(t *testing.T, st intoto.Statement) provtypes.ProvenancePredicateSLSA1 {
	t.Helper()
	if st.PredicateType != slsa1.PredicateSLSAProvenance {
		t.Fatalf("predicate type %s, want %s", st.PredicateType, slsa1.PredicateSLSAProvenance)
	}
	data, err := json.Marshal(st.Predicate)
	if err != nil {
		t.Fatal(err)
	}
	var p provtypes.ProvenancePredicateSLSA1
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("decode provenance with BuildKit's types: %v", err)
	}
	return p
}

// mode=max records the request, the materials, the steps and the Dockerfile; the
// subject is the image; SOURCE_DATE_EPOCH makes the whole index reproducible across
// fresh roots; mode=min leaves the args and steps out; version=v0.2 writes the old
// predicate.
func TestProvenanceMaxAndMin(t *testing.T) {
	t.Parallel()
	_, out := e2e(t)
	host := busyboxRegistry(t)
	df := fmt.Sprintf(provenanceDockerfile, host+"/busybox")
	dir := project(t, map[string]string{"Dockerfile": df, "a.txt": "A\n"})
	args := []string{"--build-arg", "FOO=baz", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", "example.com/app:v1"}

	maxTar := filepath.Join(out, "max.tar")
	mustBuild(t, dir, append(args, "--root", t.TempDir(), "--provenance=mode=max", "-o", "type=oci,dest="+maxTar, ".")...)
	a := readAttested(t, maxTar)
	if len(a.stmts) != 1 {
		t.Fatalf("%d statements, want 1", len(a.stmts))
	}
	st := a.stmts[0]
	if len(st.Subject) != 1 || st.Subject[0].Name != "pkg:docker/example.com/app@v1?platform=linux%2Famd64" ||
		st.Subject[0].Digest["sha256"] != a.image.Hex {
		t.Errorf("subject %+v, want the image %s", st.Subject, a.image)
	}
	p := slsa1Predicate(t, st)
	if p.BuildDefinition.BuildType != provtypes.BuildKitBuildType1 || p.RunDetails.Builder.ID != builderID {
		t.Errorf("build type %q, builder %+v", p.BuildDefinition.BuildType, p.RunDetails.Builder)
	}
	base, err := crane.Digest(host+"/busybox:latest", crane.Insecure, crane.WithPlatform(&v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	var haveBase, haveContext bool
	for _, d := range p.BuildDefinition.ResolvedDependencies {
		uris = append(uris, d.URI+d.Name)
		if strings.HasPrefix(d.URI, "pkg:docker/"+host+"/busybox@latest?platform=linux%2Famd64") && "sha256:"+d.Digest["sha256"] == base {
			haveBase = true
		}
		if d.Name == "context" && len(d.Digest["sha256"]) == 64 {
			haveContext = true
		}
	}
	if !haveBase || !haveContext {
		t.Errorf("resolved dependencies %v: want the busybox base at %s and the context", uris, base)
	}
	req := p.BuildDefinition.ExternalParameters.Request
	if req.Frontend != "dockerfile.v0" || req.Args["build-arg:FOO"] != "baz" ||
		!slices.ContainsFunc(req.Locals, func(l *provtypes.LocalSource) bool { return l.Name == "context" }) {
		t.Errorf("request %+v", req)
	}
	bc := p.BuildDefinition.InternalParameters.BuildConfig
	if bc == nil {
		t.Fatal("max mode has no buildConfig")
	}
	var sawRun, sawCopy, sawSource bool
	for _, s := range bc.Definition {
		switch {
		case s.Op.GetExec() != nil:
			sawRun = slices.Contains(s.Op.GetExec().Meta.Args, `echo "$FOO" > /x`) && len(s.Inputs) == 1
		case s.Op.GetFile() != nil:
			sawCopy = s.Op.GetFile().Actions[0].GetCopy().Dest == "/a.txt" && len(s.Inputs) == 2
		case s.Op.GetSource() != nil:
			sawSource = sawSource || strings.HasPrefix(s.Op.GetSource().Identifier, "docker-image://"+host+"/busybox")
		}
	}
	if !sawRun || !sawCopy || !sawSource || len(bc.DigestMapping) != len(bc.Definition) {
		t.Errorf("buildConfig steps: run %v copy %v source %v; %d steps, %d digests", sawRun, sawCopy, sawSource, len(bc.Definition), len(bc.DigestMapping))
	}
	md := p.RunDetails.Metadata
	if md == nil || md.BuildKitMetadata.Source == nil || len(md.BuildKitMetadata.Source.Infos) != 1 ||
		string(md.BuildKitMetadata.Source.Infos[0].Data) != df || md.StartedOn == nil || md.StartedOn.Unix() != 1700000000 {
		t.Errorf("metadata %+v: want the Dockerfile and the epoch as the times", md)
	}

	// A fresh root gives the same index, byte for byte: the attestation is
	// reproducible with the image.
	again := filepath.Join(out, "again.tar")
	mustBuild(t, dir, append(args, "--root", t.TempDir(), "--provenance=mode=max", "-o", "type=oci,dest="+again, ".")...)
	if b := readAttested(t, again); digestOf(t, b.index) != digestOf(t, a.index) {
		t.Errorf("a fresh root gave index %s, first %s", digestOf(t, b.index), digestOf(t, a.index))
	}

	// min: no build args, no steps, the request marked incomplete.
	minTar := filepath.Join(out, "min.tar")
	mustBuild(t, dir, append(args, "--root", t.TempDir(), "--attest", "type=provenance,mode=min", "-o", "type=oci,dest="+minTar, ".")...)
	m := readAttested(t, minTar)
	if m.image != a.image {
		t.Errorf("min and max attest different images: %s, %s", m.image, a.image)
	}
	pm := slsa1Predicate(t, m.stmts[0])
	if _, ok := pm.BuildDefinition.ExternalParameters.Request.Args["build-arg:FOO"]; ok ||
		pm.BuildDefinition.InternalParameters.BuildConfig != nil || pm.RunDetails.Metadata.Completeness.Request {
		t.Errorf("min provenance keeps what min leaves out: %+v", pm.BuildDefinition)
	}

	// version=v0.2: the old predicate, in BuildKit's v0.2 type.
	v02 := filepath.Join(out, "v02.tar")
	mustBuild(t, dir, append(args, "--root", t.TempDir(), "--provenance=mode=max,version=v0.2", "-o", "type=oci,dest="+v02, ".")...)
	o := readAttested(t, v02)
	if o.stmts[0].PredicateType != slsa02.PredicateSLSAProvenance {
		t.Fatalf("predicate type %s", o.stmts[0].PredicateType)
	}
	data, _ := json.Marshal(o.stmts[0].Predicate)
	var p02 provtypes.ProvenancePredicateSLSA02
	if err := json.Unmarshal(data, &p02); err != nil || p02.Invocation.Parameters.Args["build-arg:FOO"] != "baz" || len(p02.Materials) == 0 {
		t.Errorf("v0.2 predicate %+v (%v)", p02, err)
	}

	// Tools that read plain images read these: skopeo sees the amd64 image.
	si := skopeoInspect(t, "oci-archive:"+maxTar)
	if si["Architecture"] != "amd64" || si["Digest"] != digestOf(t, a.index).String() {
		t.Errorf("skopeo inspect: %v %v, want the index %s", si["Architecture"], si["Digest"], digestOf(t, a.index))
	}
	// podman loads it into a store of the test's own.
	pd := t.TempDir()
	if out, err := osexec.Command("podman", "--root", filepath.Join(pd, "root"), "--runroot", filepath.Join(pd, "run"),
		"--storage-driver", "vfs", "load", "-i", maxTar).CombinedOutput(); err != nil || !strings.Contains(string(out), "Loaded image: example.com/app:v1") {
		t.Errorf("podman load: %v\n%s", err, out)
	}
	rootfs := umociUnpack(t, maxTar)
	if data, err := os.ReadFile(filepath.Join(rootfs, "x")); err != nil || string(data) != "baz\n" {
		t.Errorf("umoci unpack: /x = %q (%v)", data, err)
	}
}

func digestOf(t *testing.T, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A push gets a min provenance by default, as with buildx; --provenance=false and
// BUILDX_NO_DEFAULT_ATTESTATIONS push the plain image; a single-platform tarball
// has none unless asked.
func TestProvenanceDefaults(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := testenv.DockerRegistry(t)
	testenv.PushImage(t, testenv.BusyboxImage(t), host+"/busybox:latest")
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox"), "a.txt": "A\n"})

	mustBuildLimited(t, dir, "--root", root, "-t", host+"/app:default", "--push", ".")
	raw, err := crane.Manifest(host+"/app:default", crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
	if err != nil || idx.MediaType != types.OCIImageIndex || len(idx.Manifests) != 2 ||
		idx.Manifests[1].Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
		t.Fatalf("pushed by default: %s (%v); want an index with an attestation manifest", raw, err)
	}
	// skopeo reads the same index, and the attestation manifest from the registry.
	sraw, err := osexec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/app:default").Output()
	if err != nil || string(sraw) != string(raw) {
		t.Errorf("skopeo inspect --raw: %s (%v)", sraw, err)
	}
	ref := host + "/app@" + idx.Manifests[1].Digest.String()
	araw, err := crane.Manifest(ref, crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var am v1.Manifest
	if err := json.Unmarshal(araw, &am); err != nil || len(am.Layers) != 1 {
		t.Fatalf("attestation manifest %s (%v)", araw, err)
	}
	blob, err := crane.PullLayer(host+"/app@"+am.Layers[0].Digest.String(), crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := blob.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	var st intoto.Statement
	if err := json.Unmarshal([]byte(readAllString(t, rc)), &st); err != nil {
		t.Fatal(err)
	}
	p := slsa1Predicate(t, st)
	if p.BuildDefinition.InternalParameters.BuildConfig != nil || len(st.Subject) != 1 ||
		st.Subject[0].Digest["sha256"] != idx.Manifests[0].Digest.Hex {
		t.Errorf("default provenance is not min, or names another image: %+v", st.Subject)
	}
	// The image itself is there for every client that picks a platform.
	if img := remoteImage(t, host+"/app:default", true); img == nil {
		t.Fatal("no image")
	}

	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"false", nil, []string{"--provenance=false"}},
		{"attest-disabled", nil, []string{"--attest", "type=provenance,disabled=true"}},
		{"env", []string{"BUILDX_NO_DEFAULT_ATTESTATIONS=1"}, nil},
	} {
		tag := host + "/app:" + c.name
		args := append([]string{"build", "--root", root, "-t", tag, "--push"}, c.args...)
		r := kilnWithEnv(t, dir, c.env, append(args, ".")...)
		if r.code != 0 {
			t.Fatalf("%s: %s", c.name, r.stderr)
		}
		raw, err := crane.Manifest(tag, crane.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := v1.ParseManifest(strings.NewReader(string(raw))); err != nil || m.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: pushed %s, want the plain image manifest", c.name, raw)
		}
	}

	// A single-platform tarball has no attestation unless asked.
	plain := filepath.Join(out, "plain.tar")
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+plain, ".")
	readOCI(t, plain)
}

// kilnWithEnv is kiln() with extra environment, safe in a parallel test (no t.Setenv).
func kilnWithEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := osexec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "KILN_E2E_MAIN=1"), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*osexec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run kiln %v: %v", args, err)
	}
	return r
}

// A local output gets the statements as files, as BuildKit's local exporter; a
// docker tarball cannot hold them and says so; bad values are refused by name.
func TestProvenanceLocalAndErrors(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox"), "a.txt": "A\n"})

	dest := filepath.Join(out, "rootfs")
	mustBuild(t, dir, "--root", root, "--provenance=max", "-o", "type=local,dest="+dest, ".")
	data, err := os.ReadFile(filepath.Join(dest, "provenance.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st intoto.Statement
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if p := slsa1Predicate(t, st); p.BuildDefinition.InternalParameters.BuildConfig == nil {
		t.Errorf("local provenance.json is not max")
	}
	if _, err := os.Stat(filepath.Join(dest, "a.txt")); err != nil {
		t.Errorf("the rootfs is not there: %v", err)
	}

	r := mustBuild(t, dir, "--root", root, "--provenance=true", "-o", "type=docker,dest="+filepath.Join(out, "d.tar"), ".")
	if !strings.Contains(r.stderr, "the docker output carries no attestations") {
		t.Errorf("no warning for a docker output: %s", r.stderr)
	}

	for _, c := range []struct{ args, want string }{
		{"--provenance=mode=full9", "provenance mode=full9: use min or max"},
		{"--provenance=version=v9", "version=v9: use v1 or v0.2"},
		{"--provenance=colour=red", `unknown provenance key "colour"`},
		{"--provenance=maybe", "use true, false, min, max"},
		{"--attest=type=vex", `unknown attestation type "vex"`},
		{"--attest=mode=max", "say which attestation with type="},
	} {
		r := kiln(t, dir, "build", "--root", root, c.args, "-o", "type=oci,dest="+filepath.Join(out, "x.tar"), ".")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %s; want %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// An ADD of a URL and of a git repository are resolved dependencies: the download
// by its content's digest, the repository by its commit.
func TestProvenanceRemoteSources(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	gs := newGitServer(t)
	v1c := gs.commits["v1"]
	srv := newFileServer(t, map[string][]byte{"/files/hello.txt": []byte("hello over http\n")})
	hello := sha256Hex([]byte("hello over http\n"))
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM scratch\nADD %s/files/hello.txt /dl/\nADD %s#v1 /src/\n", srv.srv.URL, gs.url)})
	oci := filepath.Join(out, "p.tar")
	mustBuild(t, dir, "--root", root, "--provenance=mode=min", "-o", "type=oci,dest="+oci, ".")
	p := slsa1Predicate(t, readAttested(t, oci).stmts[0])
	var http, git bool
	for _, d := range p.BuildDefinition.ResolvedDependencies {
		http = http || (d.URI == srv.srv.URL+"/files/hello.txt" && d.Digest["sha256"] == hello)
		git = git || (strings.HasPrefix(d.URI, gs.url) && d.Digest["sha1"] == v1c)
	}
	if !http || !git {
		t.Errorf("resolved dependencies %+v: want the download (sha256 %s) and the commit %s", p.BuildDefinition.ResolvedDependencies, hello, v1c)
	}
}

// In max mode a COPY --from step's inputs are its parent and the tree it copies
// from: the other stage's last step, or the image's source.
func TestProvenanceCopyFromInputs(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(`FROM %[1]s/busybox AS build
RUN echo built > /built
FROM %[1]s/busybox
COPY --from=build /built /built
`, host)})
	oci := filepath.Join(out, "p.tar")
	mustBuild(t, dir, "--root", root, "--provenance=max", "-o", "type=oci,dest="+oci, ".")
	bc := slsa1Predicate(t, readAttested(t, oci).stmts[0]).BuildDefinition.InternalParameters.BuildConfig
	byID := map[string]provtypes.BuildStep{}
	for _, s := range bc.Definition {
		byID[s.ID] = s
	}
	for _, s := range bc.Definition {
		if s.Op.GetFile() == nil {
			continue
		}
		if len(s.Inputs) != 2 {
			t.Fatalf("COPY --from inputs %v, want its parent and the build stage", s.Inputs)
		}
		from := byID[strings.TrimSuffix(s.Inputs[1], ":0")]
		if from.Op == nil || from.Op.GetExec() == nil || !slices.Contains(from.Op.GetExec().Meta.Args, "echo built > /built") {
			t.Errorf("COPY --from's second input %s is not the build stage's RUN: %+v", s.Inputs[1], from.Op)
		}
		return
	}
	t.Fatal("no COPY step in the provenance")
}

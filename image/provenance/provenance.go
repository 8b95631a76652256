// Package provenance makes the SLSA provenance predicate of a build, in BuildKit's
// types (github.com/moby/buildkit/solver/llbsolver/provenance/types over in-toto's
// SLSA structs), so that every tool that reads BuildKit's attestations (buildx
// imagetools, cosign, slsa-verifier) reads kiln's.
//
// The front end records what a build read and did as plain values (Sources);
// Predicate turns one platform's record and the request into the predicate.
// kiln departs from BuildKit in two places, both on purpose:
//   - with SOURCE_DATE_EPOCH set the run's times are the epoch and its invocation id
//     a digest of the request, so the attestation, and the index that lists it, are
//     as reproducible as the image (BuildKit records wall-clock times);
//   - the build context is a resolved dependency, named "context", whose digest is
//     that of what the build read from it (the content digests of its COPY and ADD
//     sources, sorted): two builds that read the same context files record the same.
package provenance

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	slsa "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/common"
	slsa02 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v0.2"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"
	"github.com/moby/buildkit/solver/llbsolver/provenance/types"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/purl"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/package-url/packageurl-go"
)

// Mode is how much a provenance records: min leaves out the build args, secrets
// and the steps; max has them all, and the Dockerfile itself.
type Mode string

const (
	ModeMin Mode = "min"
	ModeMax Mode = "max"
)

// Options are a provenance attestation's settings (buildx's --provenance and
// --attest type=provenance keys).
type Options struct {
	Mode Mode
	// Version is the SLSA predicate version: "v1" (BuildKit's default) or "v0.2".
	Version string
	// BuilderID is runDetails.builder.id (builder-id=).
	BuilderID string
	// Reproducible is the user's claim that the build is reproducible
	// (reproducible=true), recorded as BuildKit records it.
	Reproducible bool
}

// PredicateType is the in-toto predicate type of o's version.
func (o Options) PredicateType() string {
	if o.Version == string(types.ProvenanceSLSA02) {
		return slsa02.PredicateSLSAProvenance
	}
	return slsa1.PredicateSLSAProvenance
}

// Validate refuses a mode or version BuildKit would refuse.
func (o Options) Validate() error {
	switch o.Mode {
	case ModeMin, ModeMax:
	default:
		return fmt.Errorf("provenance mode=%s: use min or max", o.Mode)
	}
	v := types.ProvenanceSLSA(o.Version)
	if err := v.Validate(); err != nil {
		return fmt.Errorf("provenance version=%s: use v1 or v0.2", o.Version)
	}
	return nil
}

// Image is a base image the build pulled: FROM, COPY --from or RUN --mount=from.
type Image struct {
	Ref      string // as resolved, e.g. "docker.io/library/alpine:3.20"
	Platform ocispecs.Platform
	Digest   string // of the manifest, "sha256:…"
	// Local says the image came from an OCI layout (--build-context NAME=oci-layout://).
	Local bool
}

// Git is a git repository the build checked out (ADD, --build-context).
type Git struct {
	URL    string
	Commit string
}

// HTTP is a file the build downloaded (ADD URL).
type HTTP struct {
	URL    string
	Digest string // of its content, "sha256:…"
}

// Step is one build step as the front end ran it (hit or made).
type Step struct {
	// ID is the step's identity (the tree it made); Inputs the identities of the
	// trees it read, its parent first.
	ID     string
	Inputs []string
	// One of Exec, Copy, Mkdir or Source describes it.
	Exec   *Exec
	Copy   *Copy
	Mkdir  string // WORKDIR's path
	Source string // an image or context source: "docker-image://REF@DIGEST", "local://context"
	// Platform is the step's platform ("" for none), Line and EndLine where the
	// Dockerfile has it (0: nowhere).
	Platform      *ocispecs.Platform
	Line, EndLine int
}

// Exec is a RUN.
type Exec struct {
	Args    []string
	Env     []string
	Cwd     string
	User    string
	Network string // "", "none", "host"
}

// Copy is a COPY or ADD.
type Copy struct {
	Sources []string
	Dest    string
}

// Sources is what one platform's build read and ran, as the front end records it.
type Sources struct {
	Images []Image
	Git    []Git
	HTTP   []HTTP
	// Locals are the local sources the build read ("context", "dockerfile", named
	// directory contexts); ContextReads the content digests of what it read from
	// the context.
	Locals       []string
	ContextReads []string
	Secrets      []string // ids of the secrets RUN steps mounted
	SSH          []string // ids of the ssh agents RUN steps mounted
	Steps        []Step
	// Network says a RUN step had network access (the build is then not hermetic).
	Network bool
}

// Request is what the build was asked to do, and by whom.
type Request struct {
	// Args are the frontend's options as BuildKit names them: "build-arg:K",
	// "label:K", "target", "filename", "context".
	Args map[string]string
	// DockerfileName and Dockerfile are the Dockerfile's name and bytes (max mode
	// records them).
	DockerfileName string
	Dockerfile     []byte
	// ConfigSource is where the Dockerfile came from when it is a remote one (a git
	// context): its URI, commit and path.
	ConfigSource *Git
	ConfigPath   string

	BuilderPlatform string // e.g. "linux/amd64"
	TargetPlatform  string // set for a multi-platform build
	BuilderVersion  string // kiln's version, in builder.version

	StartedOn, FinishedOn time.Time
	// Epoch is SOURCE_DATE_EPOCH when set: the times are clamped to it and the
	// invocation id derived from the request.
	Epoch *time.Time
	// InvocationID identifies the run when Epoch is nil.
	InvocationID string
}

// Predicate is the provenance predicate of one platform's build: a
// *types.ProvenancePredicateSLSA1, or a *types.ProvenancePredicateSLSA02 for
// version v0.2.
func Predicate(o Options, req Request, src Sources) (any, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	deps, err := resolvedDependencies(src)
	if err != nil {
		return nil, err
	}
	params := types.Parameters{Frontend: "dockerfile.v0", Args: maps.Clone(req.Args)}
	for _, s := range slices.Sorted(slices.Values(dedupe(src.Secrets))) {
		params.Secrets = append(params.Secrets, &types.Secret{ID: s})
	}
	for _, s := range slices.Sorted(slices.Values(dedupe(src.SSH))) {
		params.SSH = append(params.SSH, &types.SSH{ID: s})
	}
	for _, l := range dedupe(src.Locals) {
		params.Locals = append(params.Locals, &types.LocalSource{Name: l})
	}
	var cfgSrc types.ProvenanceConfigSourceSLSA1
	if req.ConfigSource != nil {
		cfgSrc.URI = req.ConfigSource.URL
		cfgSrc.Digest = commitDigest(req.ConfigSource.Commit)
		cfgSrc.Path = req.ConfigPath
	}
	// BuildKit's root request is the frontend's own, args only.
	params.Root = &types.RequestProvenance{Request: &types.Parameters{Args: maps.Clone(req.Args)}}
	completeRequest := true
	if o.Mode == ModeMin {
		completeRequest = !scrubMin(&params)
	}
	if len(params.Args) == 0 {
		params.Args = nil
	}
	if params.Root.Request != nil && len(params.Root.Request.Args) == 0 {
		params.Root.Request.Args = nil
	}

	started, finished, invocation := req.StartedOn.UTC(), req.FinishedOn.UTC(), req.InvocationID
	if req.Epoch != nil {
		started, finished = req.Epoch.UTC(), req.Epoch.UTC()
		invocation = invocationID(o, req, src)
	}
	builder := slsa1.Builder{ID: o.BuilderID}
	if req.BuilderVersion != "" {
		builder.Version = map[string]string{"kiln": req.BuilderVersion}
	}
	pr := &types.ProvenancePredicateSLSA1{
		BuildDefinition: types.ProvenanceBuildDefinitionSLSA1{
			ProvenanceBuildDefinition: slsa1.ProvenanceBuildDefinition{
				BuildType:            types.BuildKitBuildType1,
				ResolvedDependencies: deps,
			},
			ExternalParameters: types.ProvenanceExternalParametersSLSA1{ConfigSource: cfgSrc, Request: params},
			InternalParameters: types.ProvenanceInternalParametersSLSA1{
				BuilderPlatform: req.BuilderPlatform,
				TargetPlatform:  req.TargetPlatform,
			},
		},
		RunDetails: types.ProvenanceRunDetailsSLSA1{
			ProvenanceRunDetails: slsa1.ProvenanceRunDetails{Builder: builder},
			Metadata: &types.ProvenanceMetadataSLSA1{
				BuildMetadata: slsa1.BuildMetadata{InvocationID: invocation, StartedOn: &started, FinishedOn: &finished},
				// The context is a local source: BuildKit calls the dependencies
				// incomplete then, and a build with network access not hermetic.
				Completeness: types.BuildKitComplete{Request: completeRequest, ResolvedDependencies: len(src.Locals) == 0},
				Hermetic:     len(src.Locals) == 0 && !src.Network,
				Reproducible: o.Reproducible,
			},
		},
	}
	if o.Mode == ModeMax {
		bc, srcMeta := buildConfig(req, src)
		pr.BuildDefinition.InternalParameters.BuildConfig = bc
		pr.RunDetails.Metadata.BuildKitMetadata.Source = srcMeta
	}
	if o.Version == string(types.ProvenanceSLSA02) {
		return pr.ConvertToSLSA02(), nil
	}
	return pr, nil
}

// resolvedDependencies are the build's materials: base images (as package URLs, as
// BuildKit writes them), git commits, downloads and the context.
func resolvedDependencies(src Sources) ([]slsa1.ResourceDescriptor, error) {
	var out []slsa1.ResourceDescriptor
	seen := map[string]bool{}
	add := func(d slsa1.ResourceDescriptor) {
		key := d.URI + "\x00" + d.Name + "\x00" + fmt.Sprint(d.Digest)
		if !seen[key] {
			seen[key] = true
			out = append(out, d)
		}
	}
	// Sorted, as BuildKit sorts its sources: concurrent stages pull in any order.
	images := slices.Clone(src.Images)
	sort.SliceStable(images, func(i, j int) bool {
		a, b := images[i], images[j]
		if a.Ref != b.Ref {
			return a.Ref < b.Ref
		}
		return a.Digest < b.Digest
	})
	gits := slices.Clone(src.Git)
	sort.SliceStable(gits, func(i, j int) bool { return gits[i].URL < gits[j].URL })
	downloads := slices.Clone(src.HTTP)
	sort.SliceStable(downloads, func(i, j int) bool { return downloads[i].URL < downloads[j].URL })
	for _, img := range images {
		typ := packageurl.TypeDocker
		if img.Local {
			typ = packageurl.TypeOCI
		}
		p := img.Platform
		uri, err := purl.RefToPURL(typ, img.Ref, &p)
		if err != nil {
			// An OCI layout on disk has no registry name a package URL could
			// spell: it is named by its path, as --build-context gave it.
			uri = "oci-layout://" + img.Ref
			if !img.Local {
				return nil, fmt.Errorf("provenance: base image %s: %w", img.Ref, err)
			}
		}
		add(slsa1.ResourceDescriptor{URI: uri, Digest: digestSet(img.Digest)})
	}
	for _, g := range gits {
		add(slsa1.ResourceDescriptor{URI: g.URL, Digest: commitDigest(g.Commit)})
	}
	for _, h := range downloads {
		add(slsa1.ResourceDescriptor{URI: h.URL, Digest: digestSet(h.Digest)})
	}
	if reads := dedupe(src.ContextReads); len(reads) > 0 {
		sort.Strings(reads)
		h := sha256.New()
		for _, r := range reads {
			h.Write([]byte(r))
			h.Write([]byte{0})
		}
		add(slsa1.ResourceDescriptor{Name: "context", Digest: slsa.DigestSet{"sha256": hex.EncodeToString(h.Sum(nil))}})
	}
	return out, nil
}

// scrubMin drops what min mode leaves out (build args, labels, secrets, ssh), as
// BuildKit does, and says whether anything was dropped.
func scrubMin(p *types.Parameters) bool {
	dropped := false
	scrub := func(args map[string]string) {
		for k := range args {
			if strings.HasPrefix(k, "build-arg:") || strings.HasPrefix(k, "label:") {
				delete(args, k)
				dropped = true
			}
		}
	}
	scrub(p.Args)
	if p.Root != nil && p.Root.Request != nil {
		scrub(p.Root.Request.Args)
	}
	p.Secrets, p.SSH = nil, nil
	return dropped
}

// invocationID names a reproducible build's run by what it was asked to do.
func invocationID(o Options, req Request, src Sources) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", o.Mode, req.DockerfileName, req.BuilderPlatform, req.TargetPlatform)
	h.Write(req.Dockerfile)
	for _, k := range slices.Sorted(maps.Keys(req.Args)) {
		fmt.Fprintf(h, "\x00%s=%s", k, req.Args[k])
	}
	var bases []string
	for _, img := range src.Images {
		bases = append(bases, img.Ref+"@"+img.Digest)
	}
	slices.Sort(bases)
	for _, b := range bases {
		fmt.Fprintf(h, "\x00%s", b)
	}
	return hex.EncodeToString(h.Sum(nil))[:25]
}

// digestSet splits "sha256:HEX" into an in-toto digest set.
func digestSet(d string) slsa.DigestSet {
	alg, hexpart, ok := strings.Cut(d, ":")
	if !ok || d == "" {
		return nil
	}
	return slsa.DigestSet{alg: hexpart}
}

// commitDigest is a git commit's digest set: sha1, or sha256 for a SHA-256 repo.
func commitDigest(commit string) slsa.DigestSet {
	if commit == "" {
		return nil
	}
	if len(commit) == 64 {
		return slsa.DigestSet{"sha256": commit}
	}
	return slsa.DigestSet{"sha1": commit}
}

func dedupe(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// pbPlatform is p in LLB's form.
func pbPlatform(p *ocispecs.Platform) *pb.Platform {
	if p == nil {
		return nil
	}
	return &pb.Platform{Architecture: p.Architecture, OS: p.OS, Variant: p.Variant}
}

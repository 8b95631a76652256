package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/dockerfile"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/image/provenance"
)

// builderID is runDetails.builder.id when builder-id= does not give one.
const builderID = "https://github.com/kiln-build/kiln"

// attestOptions are the attestations a build attaches: --provenance, --sbom and
// --attest, as buildx reads them.
type attestOptions struct {
	provenance *provenance.Options // nil: none
	sbom       *sbomOptions        // nil: none
	// explicit says the user asked for an attestation (a default one is not
	// warned about when an output cannot carry it).
	explicit bool
	// stages collects the stages' SBOMs during the build (scan-stage).
	stages *stageSBOMs
}

// sbomOptions are --sbom / --attest type=sbom's keys.
type sbomOptions struct {
	scanStage   bool // scan-stage=true: every stage built, not only the final one
	scanContext bool // scan-context=true: the build context too
}

// parseAttestations reads --provenance, --sbom and --attest. As buildx, a build
// whose image is pushed or is a multi-platform index gets a min provenance unless
// it says --provenance=false (or BUILDX_NO_DEFAULT_ATTESTATIONS is set); a
// single-platform image written as a tarball or files gets none unless asked: a
// tarball of one image is most often loaded into a tool that wants a plain
// manifest, and an index around it would change the digest users compare.
func (o buildOptions) parseAttestations(outs []outputSpec, plats []v1.Platform) (attestOptions, error) {
	var ao attestOptions
	provSet := false
	apply := func(flag, typ, value string) error {
		switch typ {
		case "provenance":
			p, err := parseProvenance(flag, value)
			if err != nil {
				return err
			}
			ao.provenance, provSet = p, true
			ao.explicit = ao.explicit || p != nil
		case "sbom":
			s, err := parseSBOM(flag, value)
			if err != nil {
				return err
			}
			ao.sbom = s
			ao.explicit = ao.explicit || s != nil
		default:
			return fmt.Errorf("%s: unknown attestation type %q: use type=provenance or type=sbom", flag, typ)
		}
		return nil
	}
	for _, a := range o.attest {
		typ, rest := "", []string{}
		for _, kv := range strings.Split(a, ",") {
			if v, ok := strings.CutPrefix(kv, "type="); ok {
				typ = v
				continue
			}
			rest = append(rest, kv)
		}
		if typ == "" {
			return ao, fmt.Errorf("--attest %s: say which attestation with type=provenance or type=sbom", a)
		}
		if err := apply("--attest", typ, strings.Join(rest, ",")); err != nil {
			return ao, err
		}
	}
	if o.provenance != "" {
		if err := apply("--provenance", "provenance", o.provenance); err != nil {
			return ao, err
		}
	}
	if o.sbom != "" {
		if err := apply("--sbom", "sbom", o.sbom); err != nil {
			return ao, err
		}
	}
	if !provSet && os.Getenv("BUILDX_NO_DEFAULT_ATTESTATIONS") == "" && defaultsToProvenance(outs, plats) {
		ao.provenance = &provenance.Options{Mode: provenance.ModeMin, Version: "v1", BuilderID: builderID}
	}
	return ao, nil
}

// defaultsToProvenance says the build gets buildx's default min provenance: it
// pushes, or writes a multi-platform index.
func defaultsToProvenance(outs []outputSpec, plats []v1.Platform) bool {
	for _, out := range outs {
		if out.Push {
			return true
		}
		if len(plats) > 1 && out.Type == "oci" {
			return true
		}
	}
	return false
}

// parseProvenance reads a provenance value: true, false, min, max, or keys
// mode=, version=, builder-id=, reproducible=, disabled=. nil means none.
func parseProvenance(flag, value string) (*provenance.Options, error) {
	p := &provenance.Options{Mode: provenance.ModeMin, Version: "v1", BuilderID: builderID}
	for _, kv := range strings.Split(value, ",") {
		if kv == "" {
			continue
		}
		k, v, hasValue := strings.Cut(kv, "=")
		if !hasValue {
			switch strings.ToLower(k) {
			case "min", "max":
				p.Mode = provenance.Mode(strings.ToLower(k))
				continue
			}
			b, err := strconv.ParseBool(k)
			if err != nil {
				return nil, fmt.Errorf("%s=%s: use true, false, min, max or keys mode=min|max,version=v1|v0.2,builder-id=URI", flag, value)
			}
			if !b {
				return nil, nil
			}
			continue
		}
		switch k {
		case "mode":
			p.Mode = provenance.Mode(v)
			if v == "full" { // BuildKit's old name of max
				p.Mode = provenance.ModeMax
			}
		case "version":
			p.Version = v
		case "builder-id":
			p.BuilderID = v
		case "reproducible", "disabled":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %s=%s is not a boolean", flag, k, v)
			}
			if k == "disabled" && b {
				return nil, nil
			}
			if k == "reproducible" {
				p.Reproducible = b
			}
		default:
			return nil, fmt.Errorf("%s: unknown provenance key %q: kiln takes mode, version, builder-id, reproducible and disabled", flag, k)
		}
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return p, nil
}

// parseSBOM reads an SBOM value: true, false, or keys scan-stage=, scan-context=,
// disabled=, generator= (kiln's own scanner only). nil means none.
func parseSBOM(flag, value string) (*sbomOptions, error) {
	s := &sbomOptions{}
	for _, kv := range strings.Split(value, ",") {
		if kv == "" {
			continue
		}
		k, v, hasValue := strings.Cut(kv, "=")
		if !hasValue {
			b, err := strconv.ParseBool(k)
			if err != nil {
				return nil, fmt.Errorf("%s=%s: use true, false or keys scan-stage=true,scan-context=true", flag, value)
			}
			if !b {
				return nil, nil
			}
			continue
		}
		switch k {
		case "generator":
			return nil, fmt.Errorf("%s: generator=%s: kiln makes SBOMs in-process and runs no generator image; drop generator=", flag, v)
		case "scan-stage", "scan-context", "disabled":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %s=%s is not a boolean", flag, k, v)
			}
			switch k {
			case "disabled":
				if b {
					return nil, nil
				}
			case "scan-stage":
				s.scanStage = b
			case "scan-context":
				s.scanContext = b
			}
		default:
			return nil, fmt.Errorf("%s: unknown sbom key %q: kiln takes scan-stage, scan-context and disabled", flag, k)
		}
	}
	return s, nil
}

// provenanceRequest is what a build was asked to do, as its provenance records it.
type provenanceRequest struct {
	buildArgs      map[string]string
	labels         map[string]string
	target         string
	dockerfileName string
	dockerfile     []byte
	multiPlatform  bool
	started        time.Time
	epoch          *time.Time
	contextDir     string
}

// created is when the build's documents (SBOMs) say they were made: the epoch
// when set, else when the build started.
func (r provenanceRequest) created() time.Time {
	if r.epoch != nil {
		return *r.epoch
	}
	return r.started
}

// provenanceAttestation is the provenance of platform p's build.
func provenanceAttestation(po provenance.Options, req provenanceRequest, p v1.Platform, res *dockerfile.Result, invocation string) (image.Attestation, error) {
	args := map[string]string{}
	for k, v := range req.buildArgs {
		args["build-arg:"+k] = v
	}
	for k, v := range req.labels {
		args["label:"+k] = v
	}
	if req.target != "" {
		args["target"] = req.target
	}
	r := provenance.Request{
		Args: args, DockerfileName: req.dockerfileName, Dockerfile: req.dockerfile,
		BuilderPlatform: platforms.Format(platforms.Normalize(platforms.DefaultSpec())),
		BuilderVersion:  version,
		StartedOn:       req.started, FinishedOn: time.Now(), Epoch: req.epoch, InvocationID: invocation,
	}
	if req.multiPlatform {
		r.TargetPlatform = p.String()
	}
	pred, err := provenance.Predicate(po, r, res.Sources)
	if err != nil {
		return image.Attestation{}, err
	}
	return image.Attestation{PredicateType: po.PredicateType(), Predicate: pred, Path: "provenance.json"}, nil
}

// attach gives built the attestations ao asks for, one set per platform: the
// SBOMs (the final image's, then the context's and the stages'), then the
// provenance, in the order BuildKit lists them.
func (ao attestOptions) attach(ctx context.Context, built *image.Built, results []*dockerfile.Result, plats []v1.Platform, req provenanceRequest, outs []outputSpec, prog *progress) error {
	if ao.provenance == nil && ao.sbom == nil {
		return nil
	}
	invocation := randomID()
	built.Attestations = make([][]image.Attestation, len(results))
	for i, res := range results {
		if ao.sbom != nil {
			atts, err := platformSBOMs(ctx, *built, i, plats[i], res, req.contextDir, ao.stages, req.created())
			if err != nil {
				return fmt.Errorf("sbom of %s: %w", plats[i].String(), err)
			}
			built.Attestations[i] = append(built.Attestations[i], atts...)
		}
		if ao.provenance != nil {
			a, err := provenanceAttestation(*ao.provenance, req, plats[i], res, invocation)
			if err != nil {
				return fmt.Errorf("provenance of %s: %w", plats[i].String(), err)
			}
			built.Attestations[i] = append(built.Attestations[i], a)
		}
	}
	if ao.explicit {
		for _, out := range outs {
			if out.Type == "docker" || out.Type == "load" {
				prog.Warn(fmt.Sprintf("the %s output carries no attestations: use type=oci, type=local, type=tar or --push to keep them", out.Type))
			}
		}
	}
	return nil
}

// randomID is an invocation id as BuildKit's: 25 base-36 characters.
func randomID() string {
	n, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(36), big.NewInt(25), nil))
	if err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	s := n.Text(36)
	return strings.Repeat("0", 25-len(s)) + s
}

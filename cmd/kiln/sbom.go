package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	intoto "github.com/in-toto/in-toto-golang/in_toto"

	"github.com/kiln-build/kiln/dockerfile"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/image/sbom"
)

// The SBOMs of a build are named as BuildKit's scanner names them: sbom for the
// final image, sbom-NAME for a stage or the context; a local or tar output writes
// them as NAME.spdx.json.
const coreSBOM = "sbom"

// sbomAttestation scans the tree at root into an SPDX statement named name.
func sbomAttestation(ctx context.Context, root, name string, created time.Time) (image.Attestation, error) {
	doc, err := sbom.Scan(ctx, root, sbom.Options{Name: name, Created: created})
	if err != nil {
		return image.Attestation{}, fmt.Errorf("sbom %s: %w", name, err)
	}
	return image.Attestation{PredicateType: intoto.PredicateSPDX, Predicate: json.RawMessage(doc), Path: name + ".spdx.json"}, nil
}

// stageSBOMs collects the SBOMs of stages other than the target, by platform, as
// the front end hands their trees over during the build (dockerfile.Options.ScanStage).
type stageSBOMs struct {
	created time.Time
	mu      sync.Mutex
	byPlat  map[string][]image.Attestation
}

func newStageSBOMs(created time.Time) *stageSBOMs {
	return &stageSBOMs{created: created, byPlat: map[string][]image.Attestation{}}
}

// scan is dockerfile.Options.ScanStage.
func (s *stageSBOMs) scan(ctx context.Context, p v1.Platform, stage, root string) error {
	a, err := sbomAttestation(ctx, root, coreSBOM+"-"+stage, s.created)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byPlat[p.String()] = append(s.byPlat[p.String()], a)
	return nil
}

// reset forgets what a build that is run again (after a store repair) scanned.
func (s *stageSBOMs) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byPlat = map[string][]image.Attestation{}
}

// of are platform p's stage SBOMs, in a fixed order (stages finish in any order).
func (s *stageSBOMs) of(p v1.Platform) []image.Attestation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.byPlat[p.String()])
	slices.SortFunc(out, func(a, b image.Attestation) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// platformSBOMs are platform i's SBOMs: the final image's, then the context's and
// the stages' when asked.
func platformSBOMs(ctx context.Context, built image.Built, i int, p v1.Platform, res *dockerfile.Result, contextDir string, stages *stageSBOMs, created time.Time) ([]image.Attestation, error) {
	rootfs := built.Rootfs
	if built.Index != nil {
		rootfs = built.Platforms[i].Rootfs
	}
	if rootfs == nil {
		return nil, fmt.Errorf("internal error: no filesystem kept for the SBOM")
	}
	root, release, err := rootfs.View(ctx)
	if err != nil {
		return nil, fmt.Errorf("mount the image's filesystem for its SBOM: %w", err)
	}
	core, err := sbomAttestation(ctx, root, coreSBOM, created)
	release()
	if err != nil {
		return nil, err
	}
	out := []image.Attestation{core}
	if res.ScanContext {
		a, err := sbomAttestation(ctx, contextDir, coreSBOM+"-context", created)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return append(out, stages.of(p)...), nil
}

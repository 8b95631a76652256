package image

import (
	"encoding/json"
	"fmt"
	"strings"

	intoto "github.com/in-toto/in-toto-golang/in_toto"
	"github.com/moby/buildkit/util/purl"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/package-url/packageurl-go"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Attestation is one in-toto predicate about a platform's image (a provenance, an
// SBOM). Its statement's subjects are filled in when the image is written: they
// name the image's manifest digest, which an output's annotations change.
type Attestation struct {
	PredicateType string
	Predicate     any
	// Path is the file a local or tar output writes the statement to, as BuildKit
	// names them: "provenance.json", "sbom.spdx.json".
	Path string
}

// The annotations and types BuildKit gives an attestation manifest and its
// descriptor in the index.
const (
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	ReferenceTypeAttestation  = "attestation-manifest"
	attestationArtifactType   = "application/vnd.docker.attestation.manifest.v1+json"
	annotationPredicateType   = "in-toto.io/predicate-type"
)

// Statement is a's in-toto v1 statement about the image whose manifest digest is
// digest, on platform p, named by names (package URLs of each, as BuildKit's
// subjects; none when the image has no name).
func (a Attestation) Statement(names []string, p v1.Platform, digest v1.Hash) ([]byte, error) {
	subjects := []intoto.Subject{}
	sp := specPlatform(p)
	for _, n := range names {
		if n == "" {
			continue
		}
		uri, err := purl.RefToPURL(packageurl.TypeDocker, n, &sp)
		if err != nil {
			return nil, fmt.Errorf("attestation subject %s: %w", n, err)
		}
		subjects = append(subjects, intoto.Subject{Name: uri, Digest: map[string]string{digest.Algorithm: digest.Hex}})
	}
	st := intoto.Statement{
		StatementHeader: intoto.StatementHeader{Type: intoto.StatementInTotoV1, PredicateType: a.PredicateType, Subject: subjects},
		Predicate:       a.Predicate,
	}
	data, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode %s attestation: %w", a.PredicateType, err)
	}
	return data, nil
}

// AttestationManifest is the manifest BuildKit stores a platform's attestations in:
// an OCI artifact (artifactType application/vnd.docker.attestation.manifest.v1+json,
// the empty config) whose layers are the statements (application/vnd.in-toto+json,
// each annotated with its predicate type) and whose subject is the image.
func AttestationManifest(img v1.Image, p v1.Platform, names []string, atts []Attestation) (v1.Image, error) {
	mt, err := img.MediaType()
	if err != nil {
		return nil, fmt.Errorf("attestation manifest: %w", err)
	}
	size, err := img.Size()
	if err != nil {
		return nil, fmt.Errorf("attestation manifest: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("attestation manifest: %w", err)
	}
	core := &attestationImage{layers: map[v1.Hash]v1.Layer{}}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  attestationArtifactType,
		Config: v1.Descriptor{
			MediaType: types.MediaType(ocispecs.MediaTypeEmptyJSON),
			Digest:    v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(string(ocispecs.DescriptorEmptyJSON.Digest), "sha256:")},
			Size:      ocispecs.DescriptorEmptyJSON.Size,
			Data:      ocispecs.DescriptorEmptyJSON.Data,
		},
		Subject: &v1.Descriptor{MediaType: mt, Digest: digest, Size: size},
	}
	for _, a := range atts {
		data, err := a.Statement(names, p, digest)
		if err != nil {
			return nil, err
		}
		l := static.NewLayer(data, types.MediaType(intoto.PayloadType))
		ld, err := l.Digest()
		if err != nil {
			return nil, err
		}
		core.layers[ld] = l
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType: types.MediaType(intoto.PayloadType), Digest: ld, Size: int64(len(data)),
			Annotations: map[string]string{annotationPredicateType: a.PredicateType},
		})
	}
	if core.raw, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("attestation manifest: %w", err)
	}
	return partial.CompressedToImage(core)
}

// attestationImage is an attestation manifest as a v1.Image: its manifest as made,
// the empty config, its statements as layers.
type attestationImage struct {
	raw    []byte
	layers map[v1.Hash]v1.Layer
}

func (a *attestationImage) RawConfigFile() ([]byte, error) {
	return ocispecs.DescriptorEmptyJSON.Data, nil
}
func (a *attestationImage) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}
func (a *attestationImage) RawManifest() ([]byte, error) { return a.raw, nil }
func (a *attestationImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("attestation manifest has no blob %s", h)
}

// NewAttestedIndex is NewIndex with each platform's attestations after the images,
// as BuildKit's image exporter lists them: an attestation manifest per platform
// that has any, with platform unknown/unknown and the reference annotations naming
// the image it is about. atts is by platform, in imgs' order; names are the image's
// names, for the statements' subjects.
func NewAttestedIndex(imgs []PlatformImage, atts [][]Attestation, names []string) (v1.ImageIndex, error) {
	idx, err := NewIndex(imgs)
	if err != nil {
		return nil, err
	}
	var adds []mutate.IndexAddendum
	for i, pi := range imgs {
		if i >= len(atts) || len(atts[i]) == 0 {
			continue
		}
		am, err := AttestationManifest(pi.Image, pi.Platform, names, atts[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pi.Platform.String(), err)
		}
		digest, err := pi.Image.Digest()
		if err != nil {
			return nil, err
		}
		raw, _ := am.RawManifest()
		ad, err := am.Digest()
		if err != nil {
			return nil, err
		}
		desc := v1.Descriptor{
			MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: ad,
			Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{
				AnnotationReferenceDigest: digest.String(),
				AnnotationReferenceType:   ReferenceTypeAttestation,
			},
		}
		adds = append(adds, mutate.IndexAddendum{Add: describedImage{Image: am, desc: desc}, Descriptor: desc})
	}
	if len(adds) == 0 {
		return idx, nil
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// IsAttestation says an index descriptor is an attestation manifest, not an image.
func IsAttestation(d v1.Descriptor) bool {
	return d.Annotations[AnnotationReferenceType] == ReferenceTypeAttestation
}

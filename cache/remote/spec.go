package remote

import (
	"encoding/csv"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/layers"
)

// Mode says which step entries an export records.
type Mode string

const (
	// ModeMin records the final image's steps (the target stage and the stages it is
	// built FROM), as BuildKit's default.
	ModeMin Mode = "min"
	// ModeMax records every step of every stage built.
	ModeMax Mode = "max"
)

// Spec is one --cache-to or --cache-from value, in buildx's syntax.
type Spec struct {
	Type string // "registry", "local", "s3" or "inline" (--cache-to only)
	// Ref is the registry reference (type=registry).
	Ref string
	// Dir is the OCI layout directory of type=local: dest= for --cache-to, src= for
	// --cache-from; Tag names the cache in its index.json (default "latest").
	Dir, Tag string

	Mode Mode
	// Compression re-encodes every layer not in that codec (compress.go); "" keeps
	// each layer as stored. CompressionLevel is its level, 0 the codec's default.
	Compression      layers.Compression
	CompressionLevel int
	// OCIMediaTypes (the default) writes OCI media types, false Docker's (a
	// manifest list root, docker layer types), as BuildKit's oci-mediatypes.
	OCIMediaTypes bool
	ImageManifest bool // an image manifest instead of an index (OCI types only)
	// CacheMounts exports the RUN --mount=type=cache dirs beside the steps (mounts.go).
	CacheMounts bool
	IgnoreError bool   // a failing cache only warns
	Insecure    bool   // registry.insecure=true: plain HTTP
	S3          S3Spec // type=s3
}

// S3Spec is where a type=s3 cache lives, in BuildKit's keys.
type S3Spec struct {
	Bucket, Region, Endpoint, Prefix, Name     string
	AccessKeyID, SecretAccessKey, SessionToken string
	PathStyle                                  bool
}

// String is how the cache is named in progress and errors.
func (s Spec) String() string {
	switch s.Type {
	case "local":
		return s.Dir + ":" + s.Tag
	case "inline":
		return "inline"
	case "s3":
		return "s3://" + s.S3.Bucket + "/" + path.Join(s.S3.Prefix, "manifests", s.S3.Name)
	}
	return s.Ref
}

// keys each type accepts, beyond type=; an unknown key is refused by name rather than
// ignored, so a typo never silently drops the cache.
var specKeys = map[string][]string{
	"registry": {"ref", "mode", "cache-mounts", "compression", "compression-level", "force-compression", "oci-mediatypes", "image-manifest", "ignore-error", "registry.insecure"},
	"s3":       {"bucket", "region", "endpoint_url", "prefix", "name", "use_path_style", "access_key_id", "secret_access_key", "session_token", "mode", "cache-mounts", "ignore-error", "compression", "oci-mediatypes", "image-manifest"},
	"local":    {"dest", "src", "tag", "mode", "cache-mounts", "compression", "compression-level", "force-compression", "oci-mediatypes", "image-manifest", "ignore-error"},
	"inline":   {"mode", "ignore-error"},
}

// Parse reads a --cache-to (export true) or --cache-from value. A bare value
// without "=" is a registry ref, as buildx takes it.
func Parse(value string, export bool) (Spec, error) {
	flag := "--cache-from"
	if export {
		flag = "--cache-to"
	}
	if !strings.Contains(value, "=") && value != "" {
		value = "type=registry,ref=" + value
	}
	fields, err := csv.NewReader(strings.NewReader(value)).Read()
	if err != nil {
		return Spec{}, fmt.Errorf("invalid %s %q: %w", flag, value, err)
	}
	kv := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Spec{}, fmt.Errorf("invalid %s %q: %q is not KEY=VALUE", flag, value, f)
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = v
	}
	s := Spec{Type: kv["type"], Mode: ModeMin, Tag: "latest", OCIMediaTypes: true}
	if s.Type == "s3" {
		s.S3.Name = "buildkit" // BuildKit's default
	}
	delete(kv, "type")
	switch s.Type {
	case "registry", "local", "s3":
	case "inline":
		if !export {
			return Spec{}, fmt.Errorf("--cache-from type=inline is not a thing: an image's inline cache is read with --cache-from type=registry,ref=IMAGE")
		}
	case "gha", "azblob":
		return Spec{}, fmt.Errorf("%s type=%s is not supported yet (use type=registry, type=local or type=s3)", flag, s.Type)
	case "":
		return Spec{}, fmt.Errorf("invalid %s %q: type= is missing (registry or local)", flag, value)
	default:
		return Spec{}, fmt.Errorf("%s type=%s is unknown (use type=registry, type=local or type=s3)", flag, s.Type)
	}
	for k, v := range kv {
		if !slices.Contains(specKeys[s.Type], k) {
			return Spec{}, fmt.Errorf("%s type=%s: unknown key %q", flag, s.Type, k)
		}
		if err := s.set(k, v, export); err != nil {
			return Spec{}, fmt.Errorf("%s type=%s: %w", flag, s.Type, err)
		}
	}
	switch {
	case s.ImageManifest && !s.OCIMediaTypes:
		return Spec{}, fmt.Errorf("%s type=%s: image-manifest=true needs oci-mediatypes=true (a Docker manifest cannot carry the cache config), as BuildKit", flag, s.Type)
	case s.Compression == layers.Zstd && !s.OCIMediaTypes:
		return Spec{}, fmt.Errorf("%s type=%s: compression=zstd needs oci-mediatypes=true: Docker's media types have no zstd layer", flag, s.Type)
	case s.CompressionLevel != 0 && s.Compression == "":
		return Spec{}, fmt.Errorf("%s type=%s: compression-level= needs compression=gzip or zstd", flag, s.Type)
	case s.Type == "inline" && s.Mode != ModeMin:
		return Spec{}, fmt.Errorf("%s type=inline: mode=%s is not supported: the image holds only its own layers (use type=registry for mode=max)", flag, s.Mode)
	case s.Type == "registry" && s.Ref == "":
		return Spec{}, fmt.Errorf("%s type=registry needs ref=REGISTRY/REPO:TAG", flag)
	case s.Type == "local" && s.Dir == "" && export:
		return Spec{}, fmt.Errorf("%s type=local needs dest=DIR", flag)
	case s.Type == "local" && s.Dir == "":
		return Spec{}, fmt.Errorf("%s type=local needs src=DIR", flag)
	case s.Type == "s3" && (s.S3.Bucket == "" || s.S3.Region == ""):
		return Spec{}, fmt.Errorf("%s type=s3 needs bucket= and region=", flag)
	}
	return s, nil
}

func (s *Spec) set(k, v string, export bool) error {
	boolean := func() (bool, error) {
		switch strings.ToLower(v) {
		case "true", "1", "":
			return true, nil
		case "false", "0":
			return false, nil
		}
		return false, fmt.Errorf("%s=%s: want true or false", k, v)
	}
	var err error
	switch k {
	case "ref":
		s.Ref = v
	case "dest":
		if !export {
			return fmt.Errorf("dest= is for --cache-to; --cache-from reads src=")
		}
		s.Dir = v
	case "src":
		if export {
			return fmt.Errorf("src= is for --cache-from; --cache-to writes dest=")
		}
		s.Dir = v
	case "tag":
		s.Tag = v
	case "mode":
		if v != string(ModeMin) && v != string(ModeMax) {
			return fmt.Errorf("mode=%s: want min or max", v)
		}
		s.Mode = Mode(v)
	case "compression":
		switch c := layers.Compression(v); c {
		case layers.Gzip, layers.Zstd, layers.Uncompressed:
			s.Compression = c
		default:
			return fmt.Errorf("compression=%s: want gzip, zstd or uncompressed", v)
		}
	case "compression-level":
		n, cerr := strconv.Atoi(v)
		if cerr != nil || n < 0 || n > 22 {
			return fmt.Errorf("compression-level=%s: want a number, 0-9 for gzip or 1-22 for zstd", v)
		}
		s.CompressionLevel = n
	case "force-compression":
		var force bool
		if force, err = boolean(); err == nil && !force {
			return fmt.Errorf("force-compression=false is not supported: kiln re-encodes every layer of the cache to compression= (BuildKit's force-compression=true)")
		}
	case "oci-mediatypes":
		s.OCIMediaTypes, err = boolean()
	case "image-manifest":
		s.ImageManifest, err = boolean()
	case "ignore-error":
		s.IgnoreError, err = boolean()
	case "cache-mounts":
		if !export {
			return fmt.Errorf("cache-mounts= is for --cache-to; --cache-from restores the mounts a cache carries")
		}
		s.CacheMounts, err = boolean()
	case "registry.insecure":
		s.Insecure, err = boolean()
	case "bucket":
		s.S3.Bucket = v
	case "region":
		s.S3.Region = v
	case "endpoint_url":
		s.S3.Endpoint = v
	case "prefix":
		s.S3.Prefix = v
	case "name":
		s.S3.Name = v
	case "use_path_style":
		s.S3.PathStyle, err = boolean()
	case "access_key_id":
		s.S3.AccessKeyID = v
	case "secret_access_key":
		s.S3.SecretAccessKey = v
	case "session_token":
		s.S3.SessionToken = v
	}
	return err
}

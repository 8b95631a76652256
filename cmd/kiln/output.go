package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// outputSpec is one -o/--output value: type=oci|docker|local|tar|registry,dest=...
type outputSpec struct {
	Type        string
	Dest        string
	Compression string
	Level       int  // compression-level (0: the codec's default)
	Force       bool // force-compression: recompress every layer, base layers too
	// Name is the image's names in this output, comma-separated: pushed to for
	// registry/image outputs, written into oci/docker tarballs (default: the -t tags).
	Name string
	Push bool
	// Annotations are annotation.K=V and annotation-manifest.K=V: added to the
	// image manifest.
	Annotations map[string]string
	// NoRewriteTimestamp is rewrite-timestamp=false.
	NoRewriteTimestamp bool
}

// parseOutput parses a buildx-style --output value. A bare value is a local dir, and
// "-" is a rootfs tar on stdout, as in buildx.
func parseOutput(s string) (outputSpec, error) {
	if !strings.Contains(s, "=") {
		if s == "-" {
			return outputSpec{Type: "tar", Dest: "-"}, nil
		}
		return outputSpec{Type: "local", Dest: s}, nil
	}
	fields, err := csv.NewReader(strings.NewReader(s)).Read()
	if err != nil {
		return outputSpec{}, fmt.Errorf("invalid --output %q: %w", s, err)
	}
	var o outputSpec
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return outputSpec{}, fmt.Errorf("invalid --output %q: %q is not key=value", s, f)
		}
		key := strings.TrimSpace(k)
		if ak, ok := annotationKey(key); ok {
			if o.Annotations == nil {
				o.Annotations = map[string]string{}
			}
			o.Annotations[ak] = v
			continue
		}
		if strings.HasPrefix(key, "annotation") {
			return outputSpec{}, fmt.Errorf("--output %q: %s: kiln annotates the image manifest only (annotation.KEY or annotation-manifest.KEY); index and descriptor annotations are not supported", s, key)
		}
		switch strings.ToLower(key) {
		case "type":
			o.Type = v
		case "dest":
			o.Dest = v
		case "compression":
			o.Compression = v
		case "name":
			o.Name = v
		case "push":
			o.Push = v == "true"
		case "oci-mediatypes":
			if b, err := strconv.ParseBool(v); err != nil || !b {
				return outputSpec{}, fmt.Errorf("--output %q: oci-mediatypes=%s: kiln writes OCI media types only (skopeo, podman, docker load, crane and every registry read them); remove the option", s, v)
			}
		case "force-compression":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return outputSpec{}, fmt.Errorf("--output %q: force-compression=%s is not true or false", s, v)
			}
			o.Force = b
		case "compression-level":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return outputSpec{}, fmt.Errorf("--output %q: compression-level=%s is not a level (0-9 for gzip, 0-22 for zstd)", s, v)
			}
			o.Level = n
		case "rewrite-timestamp":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return outputSpec{}, fmt.Errorf("--output %q: rewrite-timestamp=%s is not true or false", s, v)
			}
			o.NoRewriteTimestamp = !b
		default:
			return outputSpec{}, fmt.Errorf("--output %q: option %q is not supported by kiln", s, k)
		}
	}
	switch o.Type {
	case "oci", "docker", "local", "tar":
		if o.Dest == "" {
			return outputSpec{}, fmt.Errorf("--output type=%s needs dest=PATH (or dest=- for stdout)", o.Type)
		}
		if o.Type == "local" && o.Dest == "-" {
			return outputSpec{}, fmt.Errorf("--output type=local cannot write to stdout; use type=tar,dest=-")
		}
	case "registry":
		o.Push = true
	case "image", "load":
	case "":
		return outputSpec{}, fmt.Errorf("--output %q needs type= (oci, docker, local, tar, registry or load)", s)
	default:
		return outputSpec{}, fmt.Errorf("--output type=%s is not supported (use oci, docker, local, tar, registry or load)", o.Type)
	}
	switch o.Compression {
	case "", "gzip", "zstd", "uncompressed":
	default:
		return outputSpec{}, fmt.Errorf("--output compression=%s is not supported (use gzip, zstd or uncompressed)", o.Compression)
	}
	if max := maxLevel(o.Compression); o.Level > max {
		return outputSpec{}, fmt.Errorf("--output %q: compression-level=%d is above %s's highest, %d", s, o.Level, codecName(o.Compression), max)
	}
	return o, nil
}

// checkDest refuses, before anything is built, a dest the output could not be
// written to: a directory where one file goes (oci, docker, tar), a file where a
// directory goes (local), a path under a file. A dest that does not exist yet is
// made, with its parent directories.
func checkDest(o outputSpec) error {
	if o.Dest == "" || o.Dest == "-" {
		return nil
	}
	fi, err := os.Stat(o.Dest)
	switch {
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("--output type=%s,dest=%s: a parent of the path is a file, not a directory", o.Type, o.Dest)
	case err != nil:
		return nil // made by the output (or its error names the path)
	case o.Type == "local" && !fi.IsDir():
		return fmt.Errorf("--output type=local,dest=%s: %s is a file, and type=local writes a directory: name a directory, or use type=tar for one file", o.Dest, o.Dest)
	case o.Type != "local" && fi.IsDir():
		return fmt.Errorf("--output type=%s,dest=%s: %s is a directory, and type=%s writes one file: name the file (dest=%s), or use type=local for a directory", o.Type, o.Dest, o.Dest, o.Type, filepath.Join(o.Dest, "image.tar"))
	}
	return nil
}

func codecName(c string) string {
	if c == "" {
		return "gzip"
	}
	return c
}

// maxLevel is the highest compression-level a codec takes, as BuildKit's.
func maxLevel(c string) int {
	switch c {
	case "zstd":
		return 22
	case "uncompressed":
		return 0
	}
	return 9
}

// annotationKey is K of annotation.K or annotation-manifest.K (BuildKit's manifest
// annotations).
func annotationKey(key string) (string, bool) {
	for _, p := range []string{"annotation.", "annotation-manifest."} {
		if k, ok := strings.CutPrefix(key, p); ok && k != "" {
			return k, true
		}
	}
	return "", false
}

// parseAnnotationFlags reads --annotation values: KEY=VALUE or manifest:KEY=VALUE,
// as buildx; annotations of an index or a descriptor are refused by name.
func parseAnnotationFlags(vals []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range vals {
		kv := a
		if typ, rest, ok := strings.Cut(a, ":"); ok && !strings.Contains(typ, "=") {
			if typ != "manifest" {
				return nil, fmt.Errorf("--annotation %q: kiln annotates the image manifest only (KEY=VALUE or manifest:KEY=VALUE), not %q", a, typ)
			}
			kv = rest
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--annotation %q: want KEY=VALUE", a)
		}
		out[k] = v
	}
	return out, nil
}

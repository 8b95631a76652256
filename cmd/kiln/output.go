package main

import (
	"encoding/csv"
	"fmt"
	"strings"
)

// outputSpec is one -o/--output value: type=oci|docker|local|tar|registry,dest=...
type outputSpec struct {
	Type        string
	Dest        string
	Compression string
	Name        string // registry/image outputs: names to push (defaults to the -t tags)
	Push        bool
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
		switch strings.ToLower(strings.TrimSpace(k)) {
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
		case "oci-mediatypes", "force-compression", "compression-level":
			// kiln always writes OCI media types and recompresses nothing it does not build.
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
	case "image":
	case "":
		return outputSpec{}, fmt.Errorf("--output %q needs type= (oci, docker, local, tar or registry)", s)
	default:
		return outputSpec{}, fmt.Errorf("--output type=%s is not supported (use oci, docker, local, tar or registry)", o.Type)
	}
	switch o.Compression {
	case "", "gzip", "zstd", "uncompressed":
	default:
		return outputSpec{}, fmt.Errorf("--output compression=%s is not supported (use gzip, zstd or uncompressed)", o.Compression)
	}
	return o, nil
}

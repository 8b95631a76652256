package parser

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// nativeTag matches the docker/dockerfile tags kiln implements itself: the 1.x
// line ("1", "1.7", "1.7.1") with the "-labs" or old "-experimental" channels,
// plus "latest", "labs" and "experimental", which all point into 1.x.
var nativeTag = regexp.MustCompile(`^(?:1(?:\.\d+){0,2}(?:-labs|-experimental)?|latest|labs|experimental)$`)

// nativeRepos are the repositories that publish the docker/dockerfile frontend.
var nativeRepos = map[string]bool{
	"docker/dockerfile":          true,
	"docker/dockerfile-upstream": true,
}

// checkSyntax accepts a syntax directive (or BUILDKIT_SYNTAX) naming a
// docker/dockerfile 1.x frontend. BuildKit would run any other image as the
// frontend; kiln is daemonless and runs no frontend images, so it refuses them
// rather than build with different semantics than the file asked for.
func checkSyntax(ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("unsupported syntax directive %q: not an image reference: %w", ref, err)
	}
	repo := r.Context()
	if repo.RegistryStr() != name.DefaultRegistry || !nativeRepos[repo.RepositoryStr()] {
		return fmt.Errorf("unsupported syntax directive %q: kiln builds docker/dockerfile:1 syntax natively and cannot run other frontend images; remove the directive or use # syntax=docker/dockerfile:1", ref)
	}
	// A digest reference forgets the tag written next to it; the tag says which
	// frontend version the file wants, so read it from the part before "@".
	base, _, _ := strings.Cut(ref, "@")
	t, err := name.NewTag(base)
	if err != nil {
		return fmt.Errorf("unsupported syntax directive %q: %w", ref, err)
	}
	tag := t.TagStr()
	if !nativeTag.MatchString(tag) {
		return fmt.Errorf("unsupported syntax directive %q: kiln implements the docker/dockerfile 1.x frontend only", ref)
	}
	return nil
}

// directives are the parser directives BuildKit reads at the top of a Dockerfile.
// escape is handled by buildkit's parser itself.
type directives struct {
	syntax     string
	syntaxLine int
	check      string
}

// readDirectives finds the syntax and check directives. BUILDKIT_SYNTAX, when
// given as a build arg, overrides the syntax directive as it does in BuildKit.
// It also validates the directive block first: buildkit's parser reports a
// repeated directive or a bad escape token one line too early.
func readDirectives(dt []byte, buildArgs map[string]string, src *source) (directives, error) {
	var d directives
	var dp bkparser.DirectiveParser
	var all []*bkparser.Directive
	err := callBuildkit(func() (err error) {
		all, err = dp.ParseAll(bytes.TrimPrefix(dt, []byte("\xef\xbb\xbf"))) // as buildkit, skip a BOM
		return err
	})
	if err != nil {
		return d, src.errorf(len(all)+1, "%v", err)
	}
	for _, dir := range all {
		if dir.Name == "escape" && dir.Value != "`" && dir.Value != `\` {
			return d, src.errorf(lineOf(dir.Location), "invalid escape token '%s' does not match ` or \\", dir.Value)
		}
	}
	// The first value is the image; anything after a space is frontend options.
	if ref, _, loc, ok := bkparser.DetectSyntax(dt); ok {
		d.syntax = strings.TrimSpace(ref)
		d.syntaxLine = lineOf(loc)
	}
	if v, ok := buildArgs["BUILDKIT_SYNTAX"]; ok && v != "" {
		ref, _, _ := strings.Cut(strings.TrimSpace(v), " ")
		d.syntax, d.syntaxLine = ref, 0
	}
	if _, v, _, ok := bkparser.ParseDirective("check", dt); ok {
		d.check = strings.TrimSpace(v)
	}
	return d, nil
}

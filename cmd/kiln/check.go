package main

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	"github.com/kiln-build/kiln/dockerfile"

	"github.com/kiln-build/kiln/parser"
)

// runCheck is kiln build --check, as docker buildx build --check: it runs the build
// checks over every stage without building, prints each finding with its line, and
// fails when there is any. UndefinedVar is checked against the names the Dockerfile
// defines; a stage built on an image is left out of it (its env is the image's).
func runCheck(o buildOptions, contextDir string, stdout io.Writer, stdin io.Reader) error {
	buildArgs, err := parseBuildArgs(o.buildArgs)
	if err != nil {
		return err
	}
	_, dfName, dfData, err := readDockerfile(o.file, contextDir, stdin)
	if err != nil {
		return err
	}
	plats, err := o.targetPlatforms()
	if err != nil {
		return err
	}
	platform := plats[0]
	graph, err := parser.Parse(bytes.NewReader(dfData), parser.Options{
		Filename: dfName, BuildArgs: buildArgs, Target: o.target, TargetPlatform: platform.String(), Check: true,
	})
	if err != nil {
		return err
	}
	checks := slices.Clone(graph.Checks)
	slices.SortStableFunc(checks, func(a, b parser.Check) int { return a.Line - b.Line })
	for _, c := range checks {
		fmt.Fprintf(stdout, "WARNING: %s - %s\n%s:%d: %s\n\n", c.Rule, c.URL, dfName, c.Line, c.Message)
	}
	if len(checks) == 0 {
		fmt.Fprintln(stdout, "Check complete, no warnings found.")
		return nil
	}
	return fmt.Errorf("check complete, %d warning(s) found", len(checks))
}

// sessionOptions parses --secret, --ssh and --allow.
func (o buildOptions) sessionOptions() (map[string]dockerfile.SecretSource, map[string]string, error) {
	secrets := map[string]dockerfile.SecretSource{}
	for _, v := range o.secrets {
		id, src, err := dockerfile.ParseSecret(v)
		if err != nil {
			return nil, nil, err
		}
		secrets[id] = src
	}
	agents := map[string]string{}
	for _, v := range o.ssh {
		id, sock, err := dockerfile.ParseSSH(v)
		if err != nil {
			return nil, nil, err
		}
		agents[id] = sock
	}
	for _, a := range o.allow {
		if err := dockerfile.ValidateEntitlement(a); err != nil {
			return nil, nil, err
		}
	}
	return secrets, agents, nil
}

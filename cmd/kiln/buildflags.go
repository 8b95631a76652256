package main

// The values of kiln build's flags: build args, key=value lists, limits, sizes and
// SOURCE_DATE_EPOCH.

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/exec"
)

func parseBuildArgs(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid --build-arg %q: want KEY=VALUE or KEY", a)
		}
		if !ok {
			ev, set := os.LookupEnv(k)
			if !set {
				continue // as docker: a bare KEY not in the environment is not set
			}
			v = ev
		}
		out[k] = v
	}
	return out, nil
}

func parseKeyValues(flag string, kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid %s %q: want KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func (o buildOptions) limits() (exec.Limits, error) {
	l := exec.Limits{CPUs: o.cpus, Pids: o.pidsLimit}
	if o.cpus < 0 {
		return l, fmt.Errorf("--cpus must be positive")
	}
	if o.memory != "" {
		n, err := parseSize(o.memory)
		if err != nil {
			return l, fmt.Errorf("--memory: %w", err)
		}
		if n < 6<<20 {
			return l, fmt.Errorf("--memory %s is below the minimum of 6MiB", o.memory)
		}
		l.MemoryBytes = n
	}
	return l, nil
}

// parseSize reads sizes like 512m, 2g, 1024k or a plain byte count.
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "ib"), "b")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	var n float64
	if _, err := fmt.Sscanf(s, "%g", &n); err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (use e.g. 512m or 2g)", s)
	}
	return int64(n * float64(mult)), nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH from the build args, then the environment.
func sourceDateEpoch(buildArgs map[string]string) *time.Time {
	v, ok := buildArgs["SOURCE_DATE_EPOCH"]
	if !ok {
		v, ok = os.LookupEnv("SOURCE_DATE_EPOCH")
	}
	if !ok || v == "" {
		return nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil // refused before the build by resolveSourceDateEpoch
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}

// resolveSourceDateEpoch refuses a SOURCE_DATE_EPOCH (build arg or environment)
// that is not a number of seconds, as BuildKit does, rather than building without
// it. The value "context" asks for the time of the commit the context is checked
// out at (git log -1 --format=%ct in the context), the usual choice for a
// reproducible CI build, and is replaced by it where it was given.
func resolveSourceDateEpoch(buildArgs map[string]string, contextDir string) error {
	v, ok := buildArgs["SOURCE_DATE_EPOCH"]
	fromArg := ok
	from := "--build-arg SOURCE_DATE_EPOCH"
	if !ok {
		v, ok = os.LookupEnv("SOURCE_DATE_EPOCH")
		from = "SOURCE_DATE_EPOCH in the environment"
	}
	if !ok || v == "" {
		return nil
	}
	if v == "context" {
		out, err := osexec.Command("git", "-C", contextDir, "log", "-1", "--format=%ct").Output()
		ct := strings.TrimSpace(string(out))
		if err != nil || ct == "" {
			return fmt.Errorf("%s=context: the context %s is not a git checkout with a commit (%v); give a Unix time instead", from, contextDir, gitError(err))
		}
		if fromArg {
			buildArgs["SOURCE_DATE_EPOCH"] = ct
		} else if err := os.Setenv("SOURCE_DATE_EPOCH", ct); err != nil {
			return err
		}
		v = ct
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err != nil || sec < 0 {
		return fmt.Errorf("%s=%q is not a Unix time in seconds (e.g. $(git log -1 --format=%%ct), or context for the context's commit)", from, v)
	}
	return nil
}

// gitError is what git said when it failed.
func gitError(err error) string {
	var ee *osexec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return strings.TrimSpace(string(ee.Stderr))
	}
	if err == nil {
		return "no commit"
	}
	return err.Error()
}

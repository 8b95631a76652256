package main

// The values of kiln build's flags: build args, key=value lists, limits, sizes and
// SOURCE_DATE_EPOCH.

import (
	"fmt"
	"os"
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
		return nil // refused before the build by checkSourceDateEpoch
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}

// checkSourceDateEpoch refuses a SOURCE_DATE_EPOCH (build arg or environment) that
// is not a number of seconds, as BuildKit does, rather than building without it.
func checkSourceDateEpoch(buildArgs map[string]string) error {
	v, ok := buildArgs["SOURCE_DATE_EPOCH"]
	from := "--build-arg SOURCE_DATE_EPOCH"
	if !ok {
		v, ok = os.LookupEnv("SOURCE_DATE_EPOCH")
		from = "SOURCE_DATE_EPOCH in the environment"
	}
	if !ok || v == "" {
		return nil
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err != nil || sec < 0 {
		return fmt.Errorf("%s=%q is not a Unix time in seconds (e.g. $(git log -1 --format=%%ct))", from, v)
	}
	return nil
}

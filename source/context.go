package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Context is a build context directory with its ignore rules loaded.
type Context struct {
	Dir string
	// IgnoreFile is the ignore file that was read ("" when there is none).
	IgnoreFile string
	// Patterns are the ignore patterns as read, in order (last match wins).
	Patterns []string
}

// Open loads dir as a build context. dockerfile is the path of the Dockerfile (may be
// outside dir, may be ""); "<dockerfile name>.dockerignore" beside it wins over
// dir/.dockerignore. Neither the Dockerfile nor the ignore file is excluded
// automatically: like BuildKit, `COPY . .` copies them unless a pattern names them.
func Open(dir, dockerfile string) (*Context, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s: not a directory", dir)
	}
	c := &Context{Dir: abs}
	var candidates []string
	if dockerfile != "" {
		candidates = append(candidates, filepath.Join(filepath.Dir(dockerfile), filepath.Base(dockerfile)+".dockerignore"))
	}
	candidates = append(candidates, filepath.Join(abs, ".dockerignore"))
	for _, p := range candidates {
		patterns, err := readIgnoreFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c.IgnoreFile, c.Patterns = p, patterns
		break
	}
	// Compile once here so a bad pattern is reported when the context is opened, not in
	// the middle of a copy.
	if _, err := c.matcher(); err != nil {
		return nil, err
	}
	return c, nil
}

func readIgnoreFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return patterns, nil
}

// matcher returns a fresh matcher for the ignore patterns, or nil when there are none.
// A fresh one per walk because patternmatcher compiles lazily and is not safe for
// concurrent use, and several stages may copy from the context at once.
func (c *Context) matcher() (*patternmatcher.PatternMatcher, error) {
	if c == nil || len(c.Patterns) == 0 {
		return nil, nil
	}
	pm, err := patternmatcher.New(c.Patterns)
	if err != nil {
		return nil, fmt.Errorf("ignore file %s: %w", c.IgnoreFile, err)
	}
	return pm, nil
}

// Excluded reports whether rel (slash-separated, relative to Dir) is excluded by the
// ignore rules, taking its parent directories into account (an excluded directory
// excludes everything below it unless a later "!" pattern brings a path back).
func (c *Context) Excluded(rel string) bool {
	pm, err := c.matcher()
	if err != nil || pm == nil {
		return false
	}
	rel = strings.TrimPrefix(filepath.ToSlash(filepath.Clean("/"+rel)), "/")
	if rel == "" {
		return false
	}
	m, err := pm.MatchesOrParentMatches(rel)
	return err == nil && m
}

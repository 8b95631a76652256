package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"

	"github.com/kiln-build/kiln/internal/rootpath"
)

// selection is one top-level source of a COPY/ADD after wildcard expansion.
type selection struct {
	name     string      // cleaned path relative to Source.Root, slash-separated, "." for the root
	host     string      // host path, every symlink (the last one too) followed inside Root
	ctxRel   string      // host path relative to Root, slash-separated, "" for the root
	fi       fs.FileInfo // Lstat of host
	ignoreMI patternmatcher.MatchInfo
	wildcard bool // selected by a wildcard (so --exclude applies to it too)
	// copier numbers the selection among all of them: BuildKit's file op copies each
	// source, and each match of a wildcard, on its own, so hard links are kept
	// within a selection (a directory's tree) and not across two (linkKey).
	copier int
}

// cleanSource turns a source as written into a clean slash path relative to the root.
// A leading "/" means the root, as in Docker, and ".." stops at the root, as BuildKit
// resolves it: "../x" is the context's "x" (the docs say such a path cannot be used;
// BuildKit, which every modern docker build runs, copies "x", and kiln does what the
// builds people run do). Nothing outside the root is ever reached.
func cleanSource(s string) string {
	c := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(s)), "/")
	if c == "" {
		return "."
	}
	return c
}

// containsWildcards reports whether a path component holds an unescaped glob
// character, as BuildKit's copier decides.
func containsWildcards(name string) bool {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// selectSources expands opts.Sources into top-level selections, in source order, each
// wildcard's matches in lexical order. Ignored paths behave as absent. A plain source
// that is absent is an error; a wildcard matching nothing is not (BuildKit's
// AllowEmptyWildcard).
func selectSources(ctx context.Context, src Source, opts CopyOptions) ([]selection, error) {
	pm, err := src.Context.matcher()
	if err != nil {
		return nil, err
	}
	var out []selection
	for _, s := range opts.Sources {
		rel := cleanSource(s)
		if !containsWildcards(rel) {
			sel, ok, err := resolveSelection(ctx, src.Root, rel, pm)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s, err)
			}
			if !ok {
				return nil, notFound(src, opts, rel)
			}
			sel.copier = len(out)
			out = append(out, sel)
			continue
		}
		names, err := expandWildcard(src.Root, rel)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		for _, name := range names {
			sel, ok, err := resolveSelection(ctx, src.Root, name, pm)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if !ok {
				// A match that is there but resolves to nothing is a symlink whose
				// target is missing or ignored: BuildKit fails on it, and skipping
				// it would drop a file the user asked for without a word.
				if dangling, err := danglingLink(src.Root, name, pm); err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				} else if dangling {
					return nil, fmt.Errorf("%s matches symlink %s, whose target is not in the %s: %w", s, name, sourceKind(src), fs.ErrNotExist)
				}
				continue
			}
			sel.wildcard, sel.copier = true, len(out)
			out = append(out, sel)
		}
	}
	return out, nil
}

func notFound(src Source, opts CopyOptions, rel string) error {
	if src.Context != nil {
		return fmt.Errorf("file not found in build context or excluded by .dockerignore: stat %s: %w", rel, fs.ErrNotExist)
	}
	return fmt.Errorf("file not found in source: stat %s: %w", rel, fs.ErrNotExist)
}

// danglingLink reports whether name (a wildcard's match, there when the wildcard
// was expanded) is a symlink that is not itself ignored, so that its failing to
// resolve means its target is absent or ignored.
func danglingLink(root, name string, pm *patternmatcher.PatternMatcher) (bool, error) {
	dir, err := rootpath.Resolve(root, path.Dir(name))
	if err != nil {
		return false, err
	}
	fi, err := os.Lstat(filepath.Join(dir, path.Base(name))) // one component, read from dir
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return false, nil
	}
	if pm != nil {
		excluded, err := pm.MatchesOrParentMatches(name)
		if err != nil || excluded {
			return false, err
		}
	}
	return true, nil
}

func sourceKind(src Source) string {
	if src.Context != nil {
		return "build context (or excluded by .dockerignore)"
	}
	return "source"
}

// resolveSelection follows name inside root. BuildKit's dockerfile frontend sets
// FollowSymlinks for COPY/ADD sources, so a source that is itself a symlink copies
// what it points to (resolved inside root, never on the host), under the link's name.
// ok is false when the path does not exist or is ignored. An ignored directory is
// there only for what a "!" exception brings back below it: one that names nothing
// that exists leaves it ignored, as BuildKit's context transfer never sends it.
func resolveSelection(ctx context.Context, root, name string, pm *patternmatcher.PatternMatcher) (selection, bool, error) {
	host, err := rootpath.Resolve(root, name)
	if err != nil {
		return selection{}, false, err
	}
	fi, err := os.Lstat(host)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, notDirErr) {
		return selection{}, false, nil
	}
	if err != nil {
		return selection{}, false, err
	}
	rel, err := filepath.Rel(filepath.Clean(root), host)
	if err != nil {
		return selection{}, false, err
	}
	rel = filepath.ToSlash(rel)
	if rel == "." {
		rel = ""
	}
	sel := selection{name: name, host: host, ctxRel: rel, fi: asCopied(fi)}
	if pm != nil && rel != "" {
		excluded, mi, err := pm.MatchesUsingParentResults(rel, patternmatcher.MatchInfo{})
		if err != nil {
			return selection{}, false, err
		}
		// An ignored directory is still there when a "!" pattern brings back
		// something below it; the walk filters its contents.
		if excluded && !(fi.IsDir() && mayHoldExceptions(pm, rel)) {
			return selection{}, false, nil
		}
		sel.ignoreMI = mi
		if excluded {
			kept, err := filters{ignore: pm}.keepsAnything(ctx, sel)
			if err != nil || !kept {
				return selection{}, false, err
			}
		}
	}
	return sel, true, nil
}

// expandWildcard matches rel (which holds a wildcard) against the tree under root, one
// path component at a time with filepath.Match semantics, like BuildKit's copier. The
// fixed prefix is resolved inside root (symlinks followed); below it symlinked
// directories are not descended, as filepath.Walk does in BuildKit.
func expandWildcard(root, rel string) ([]string, error) {
	comps := strings.Split(rel, "/")
	i := 0
	for i < len(comps) && !containsWildcards(comps[i]) {
		i++
	}
	base := path.Join(comps[:i]...)
	if base == "" {
		base = "."
	}
	baseHost, err := rootpath.Resolve(root, base)
	if err != nil {
		return nil, err
	}
	var out []string
	var walk func(dirHost, dirName string, pats []string) error
	walk = func(dirHost, dirName string, pats []string) error {
		ents, err := os.ReadDir(dirHost)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, notDirErr) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			ok, err := filepath.Match(pats[0], e.Name())
			if err != nil {
				return fmt.Errorf("bad pattern %q: %w", pats[0], err)
			}
			if !ok {
				continue
			}
			name := path.Join(dirName, e.Name())
			if len(pats) == 1 {
				out = append(out, name)
			} else if e.IsDir() {
				if err := walk(filepath.Join(dirHost, e.Name()), name, pats[1:]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(baseHost, base, comps[i:]); err != nil {
		return nil, err
	}
	return out, nil
}

// mayHoldExceptions reports whether a "!" pattern could bring back a path below the
// excluded directory dir. BuildKit descends only when an exception names a path under
// dir literally; kiln also descends when an exception holds a wildcard (such as
// "!**/keep"), since the walk only keeps a directory when something under it survives.
func mayHoldExceptions(pm *patternmatcher.PatternMatcher, dir string) bool {
	if !pm.Exclusions() {
		return false
	}
	prefix := dir + "/"
	for _, p := range pm.Patterns() {
		if !p.Exclusion() {
			continue
		}
		s := filepath.ToSlash(p.String())
		if strings.HasPrefix(s+"/", prefix) || containsWildcards(s) {
			return true
		}
	}
	return false
}

package source

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
)

// COPY --parents, as BuildKit's dockerfile frontend turns it into a file op: a source
// "base/./pattern" (or just "pattern", with the source root as base) copies the
// contents of base into dest, keeping only what pattern matches (a directory it
// matches brings everything below it) and the directories on the way to it, with
// their own metadata. A pattern without wildcards must exist; wildcards may match
// nothing (dest is still created).

// splitParents cuts a --parents source at its first "/./" pivot.
func splitParents(s string) (base, pattern string, err error) {
	parent, pat, ok := strings.Cut(filepath.ToSlash(s), "/./")
	if !ok {
		parent, pat = "/", s
	}
	return cleanSource(parent), cleanSource(pat), nil
}

// parentEntries lists what a COPY --parents copies, each entry's rel being its path
// under dest. A path two sources both bring is listed once (directories keep their
// first position so parents stay ahead of children; a later non-directory wins, as a
// later copy would overwrite it).
func parentEntries(ctx context.Context, src Source, opts CopyOptions, f filters) ([]entry, error) {
	pm, err := src.Context.matcher()
	if err != nil {
		return nil, err
	}
	var out []entry
	index := map[string]int{}
	add := func(e entry) {
		if i, ok := index[e.rel]; ok {
			if !e.fi.IsDir() || !out[i].fi.IsDir() {
				out[i] = e
			}
			return
		}
		index[e.rel] = len(out)
		out = append(out, e)
	}
	for _, s := range opts.Sources {
		base, pattern, err := splitParents(s)
		if err != nil {
			return nil, err
		}
		bases := []string{base}
		if containsWildcards(base) {
			if bases, err = expandWildcard(src.Root, base); err != nil {
				return nil, fmt.Errorf("%s: %w", s, err)
			}
		}
		found := false
		for _, b := range bases {
			n, err := parentsFrom(ctx, src.Root, b, pattern, pm, f, add)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s, err)
			}
			found = found || n > 0
		}
		if !found && !containsWildcards(base) && !containsWildcards(pattern) {
			return nil, notFound(src, opts, path.Join(base, pattern))
		}
	}
	return out, nil
}

// parentsFrom adds what pattern selects below the directory base and returns how many
// entries it added. Only the part of pattern before its first wildcard is resolved
// directly; the rest is matched while walking that directory.
func parentsFrom(ctx context.Context, root, base, pattern string, pm *patternmatcher.PatternMatcher, f filters, add func(entry)) (int, error) {
	var comps []string
	if pattern != "." {
		comps = strings.Split(pattern, "/")
	}
	k := 0
	for k < len(comps) && !containsWildcards(comps[k]) {
		k++
	}
	literal := k == len(comps) // no wildcard: pattern names one path
	ancestors := comps[:k]
	if literal && k > 0 {
		ancestors = comps[:k-1]
	}
	exclude := func(rel string) (bool, error) {
		if f.exclude == nil {
			return false, nil
		}
		return f.exclude.MatchesOrParentMatches(rel)
	}
	var pending []entry
	for i := range ancestors {
		rel := path.Join(comps[:i+1]...)
		sel, ok, err := resolveSelection(ctx, root, path.Join(base, rel), pm)
		if err != nil {
			return 0, err
		}
		if !ok || !sel.fi.IsDir() {
			return 0, nil
		}
		if ex, err := exclude(rel); err != nil || ex {
			return 0, err
		}
		pending = append(pending, entry{rel: rel, host: sel.host, fi: sel.fi})
	}
	top := path.Join(comps[:k]...)
	if top == "" {
		top = "."
	}
	sel, ok, err := resolveSelection(ctx, root, path.Join(base, top), pm)
	if err != nil || !ok {
		return 0, err
	}
	if !literal && !sel.fi.IsDir() {
		return 0, nil
	}
	// --exclude is matched against paths relative to base (the copy's source, as in
	// BuildKit), so the walk applies only the ignore rules and excludes come after.
	walked, err := filters{ignore: f.ignore}.walk(ctx, sel)
	if err != nil {
		return 0, err
	}
	relOf := func(e entry) string {
		if top == "." {
			return e.rel
		}
		return join(top, e.rel)
	}
	var keep map[string]bool // for a wildcard pattern: what matched and its parents
	if !literal {
		m, err := patternmatcher.New([]string{pattern})
		if err != nil {
			return 0, fmt.Errorf("bad pattern %q: %w", pattern, err)
		}
		keep = map[string]bool{}
		for _, e := range walked[1:] {
			rel := relOf(e)
			ok, err := m.MatchesOrParentMatches(rel)
			if err != nil {
				return 0, err
			}
			for ok && !keep[rel] && rel != top && rel != "." {
				keep[rel] = true
				rel = path.Dir(rel)
			}
		}
		if len(keep) == 0 {
			return 0, nil
		}
	}
	n := 0
	emit := func(e entry) error {
		if e.rel == "." || e.rel == "" {
			return nil // base itself maps onto dest
		}
		ex, err := exclude(e.rel)
		if err != nil || ex {
			return err
		}
		add(e)
		n++
		return nil
	}
	for _, e := range pending {
		if err := emit(e); err != nil {
			return 0, err
		}
	}
	for i, e := range walked {
		rel := relOf(e)
		if !literal && (i == 0 || !keep[rel]) {
			continue // the walk's top is the last of the ancestors, listed already
		}
		if err := emit(entry{rel: rel, host: e.host, fi: e.fi}); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// copyParents is Copy for COPY --parents: dest is always a directory.
func copyParents(ctx context.Context, src Source, destRoot string, opts CopyOptions) error {
	f, err := newFilters(src, opts)
	if err != nil {
		return err
	}
	entries, err := parentEntries(ctx, src, opts, f)
	if err != nil {
		return err
	}
	c := &copier{src: src, destRoot: destRoot, opts: opts, filters: f}
	destImg := path.Clean("/" + filepath.ToSlash(opts.Dest))
	destHost, err := MkdirAll(destRoot, destImg, c.createdDir())
	if err != nil {
		return err
	}
	// Hard links are kept across all the sources here: their entries are merged.
	if err := c.copyEntries(ctx, entriesOf(entries), destHost, destImg, 0); err != nil {
		return err
	}
	return nil
}

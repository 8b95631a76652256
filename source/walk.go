package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/moby/patternmatcher"
)

const notDirErr = syscall.ENOTDIR

// entry is one path a copy reads: a selection itself or something below it.
type entry struct {
	rel  string // relative to the selection, slash-separated; "" for the selection itself
	host string
	fi   fs.FileInfo // Lstat
	de   fs.DirEntry // set by the walk until statAll replaces it with fi
	// xattrs of a regular file, when the walk lists them (filters.xattrs); listed
	// says it did. Nil when it has none, or they could not be read.
	xattrs []fileXattr
	listed bool
}

// socketFile is a socket as a copy sees it: BuildKit's context transfer (fsutil)
// sends a socket as an empty regular file with the socket's permission bits, so COPY
// makes one (measured with buildctl: srw-r----- becomes -rw-r----- of size 0), a bind
// mount of the context shows one, and the digest records one. Its content is never
// read: opening a socket fails.
type socketFile struct{ fs.FileInfo }

func (s socketFile) Mode() fs.FileMode {
	return s.FileInfo.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func (s socketFile) Size() int64 { return 0 }

// asCopied is fi as a copy takes it: a socket is an empty regular file.
func asCopied(fi fs.FileInfo) fs.FileInfo {
	if fi.Mode()&fs.ModeSocket != 0 {
		return socketFile{fi}
	}
	return fi
}

// isSocket reports whether fi is a socket taken as an empty file (asCopied).
func isSocket(fi fs.FileInfo) bool {
	_, ok := fi.(socketFile)
	return ok
}

// filters are the rules that drop paths below a selection. Each walk builds its own
// matchers because patternmatcher is not safe for concurrent use.
type filters struct {
	ignore  *patternmatcher.PatternMatcher // context ignore rules, on paths relative to the context root
	exclude *patternmatcher.PatternMatcher // --exclude, on paths relative to the selection
	probe   bool                           // stop the walk at the first path kept (keepsAnything)
	batch   int                            // walkEach's batch size; 0: walkBatch
	// xattrs has walkEach list each regular file's extended attributes with its
	// lstat, on the stat workers: a copy that leaves its files pending (Pending)
	// needs them, and one llistxattr after another on the copy's own goroutine was
	// a tenth of W2's COPY.
	xattrs bool
}

// errProbeHit stops a probing walk: something below the selection is kept.
var errProbeHit = errors.New("a path is kept")

// keepsAnything reports whether the filters keep anything below the directory sel
// (an excluded directory is kept only for what an exception brings back), without
// listing it all.
func (f filters) keepsAnything(ctx context.Context, sel selection) (bool, error) {
	f.probe = true
	_, err := f.walk(ctx, sel)
	if errors.Is(err, errProbeHit) {
		return true, nil
	}
	return false, err
}

func newFilters(src Source, opts CopyOptions) (filters, error) {
	var f filters
	var err error
	if f.ignore, err = src.Context.matcher(); err != nil {
		return f, err
	}
	if len(opts.Excludes) > 0 {
		if f.exclude, err = patternmatcher.New(opts.Excludes); err != nil {
			return f, fmt.Errorf("--exclude: %w", err)
		}
	}
	return f, nil
}

// excludesSelection reports whether --exclude drops a whole selection. Like BuildKit,
// the patterns are matched below each source, so a plain source is never excluded
// itself; a wildcard match is, when a pattern names it (`COPY --exclude=*.txt hom* /d/`).
func (f filters) excludesSelection(sel selection) (bool, error) {
	if f.exclude == nil || !sel.wildcard {
		return false, nil
	}
	return f.exclude.MatchesOrParentMatches(sel.name)
}

// walk lists sel and, for a directory, everything below it that the filters keep, in
// lexical pre-order. Symlinks below the selection are listed as links, never followed.
// A directory that is itself filtered out but may hold an exception is descended and
// kept only when something below it is kept.
func (f filters) walk(ctx context.Context, sel selection) ([]entry, error) {
	var out []entry
	err := f.walkEach(ctx, sel, func(es []entry) error {
		out = append(out, es...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// walkBatch is how many walked paths are stat'ed and handed on together.
const walkBatch = 4096

// walkEach is walk handing the entries to fn in order, about walkBatch at a time, each
// stat'ed: a caller that keeps less than the entries themselves (Digest keeps a digest
// per path) never holds a whole big tree's stat results. fn may keep the slice.
func (f filters) walkEach(ctx context.Context, sel selection, fn func([]entry) error) error {
	batch := f.batch
	if batch <= 0 {
		batch = walkBatch
	}
	buf := []entry{{host: sel.host, fi: sel.fi}}
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := statAll(ctx, buf, f.xattrs); err != nil {
			return err
		}
		err := fn(buf)
		buf = make([]entry, 0, min(batch, walkBatch))
		return err
	}
	if !sel.fi.IsDir() {
		return flush()
	}
	// A directory filtered out itself stays in buf until its walk shows whether
	// anything below it is kept, so nothing is handed on while one is open.
	openDropped := 0
	var rec func(dirHost, rel, ctxRel string, imi, emi patternmatcher.MatchInfo) error
	rec = func(dirHost, rel, ctxRel string, imi, emi patternmatcher.MatchInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(dirHost)
		if err != nil {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		for _, de := range ents {
			name := de.Name()
			childRel := join(rel, name)
			childCtx := join(ctxRel, name)
			host := filepath.Join(dirHost, name)
			isDir := de.IsDir()
			dropped := false
			var cimi, cemi patternmatcher.MatchInfo
			if f.ignore != nil {
				var m bool
				if m, cimi, err = f.ignore.MatchesUsingParentResults(childCtx, imi); err != nil {
					return err
				}
				if m {
					if !isDir || !mayHoldExceptions(f.ignore, childCtx) {
						continue
					}
					dropped = true
				}
			}
			if f.exclude != nil {
				var m bool
				if m, cemi, err = f.exclude.MatchesUsingParentResults(childRel, emi); err != nil {
					return err
				}
				if m {
					if !isDir || !mayHoldExceptions(f.exclude, childRel) {
						continue
					}
					dropped = true
				}
			}
			mark := len(buf)
			buf = append(buf, entry{rel: childRel, host: host, de: de})
			if f.probe && !dropped {
				return errProbeHit
			}
			if isDir {
				if dropped {
					openDropped++
				}
				if err := rec(host, childRel, childCtx, cimi, cemi); err != nil {
					return err
				}
				if dropped {
					openDropped--
					if len(buf) == mark+1 {
						buf = buf[:mark]
					}
				}
			}
			if openDropped == 0 && len(buf) >= batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := rec(sel.host, "", sel.ctxRel, sel.ignoreMI, patternmatcher.MatchInfo{}); err != nil {
		return err
	}
	return flush()
}

// statWorkers lstat in parallel: on a warm rebuild the lstat of every file is nearly
// all the work, and it is kernel time that two cores share well.
const statWorkers = 2

// statAll fills in fi for entries listed by the walk, in batches on a few workers.
func statAll(ctx context.Context, es []entry, xattrs bool) error {
	const batch = 256
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range statWorkers {
		g.Go(func() error {
			for {
				if err := gctx.Err(); err != nil {
					return err
				}
				lo := int(next.Add(batch)) - batch
				if lo >= len(es) {
					return nil
				}
				for i := lo; i < min(lo+batch, len(es)); i++ {
					if es[i].de == nil {
						continue // the selection itself, stat'ed when selected
					}
					fi, err := es[i].de.Info()
					if err != nil {
						return fmt.Errorf("stat %s: %w", es[i].rel, err)
					}
					es[i].fi, es[i].de = asCopied(fi), nil
					if xattrs && fi.Mode().IsRegular() {
						es[i].xattrs, _ = listXattrs(es[i].host)
						es[i].listed = true
					}
				}
			}
		})
	}
	return g.Wait()
}

func join(dir, name string) string {
	if name == "" {
		return dir
	}
	if dir == "" || dir == "." {
		return name
	}
	return dir + "/" + name
}

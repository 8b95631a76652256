package solver

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/source"
)

// CopyInputs is what a COPY/ADD op reads, resolved by the front end.
type CopyInputs struct {
	// Name is "COPY" or "ADD", in errors.
	Name string
	// Parts are copied in order, each with its own source; a later one replaces
	// the files of an earlier one.
	Parts []CopyPart
	// Link copies into an empty snapshot and keys the op without the state below
	// it (COPY --link, link.go).
	Link bool
	// Pending lets the copy write only its layer when nothing later reads its
	// files (pending.go); it applies only where the snapshotter stacks with
	// overlay and never to ADD.
	Pending bool
}

// CopyPart is a run of a COPY/ADD's sources read from one place.
type CopyPart struct {
	Source  source.Source
	Options source.CopyOptions
	// Fetch, when set, materialises Source on a miss: a URL pinned by --checksum or
	// a git commit is keyed before it is downloaded.
	Fetch func(ctx context.Context) (source.Source, error)
}

// Copy executes a COPY/ADD op (s.Op.Copy) on st: the op's --chown is resolved in
// the tree it copies into (BuildKit's file-op rules: --chown=UID is UID:UID; a name
// the image's /etc/passwd or /etc/group lacks is 0, or the user's gid, with a
// warning; a name looked up in a file the image lacks fails, as Docker documents),
// then every part is copied with package source.
func (e *Engine) Copy(ctx context.Context, st State, s Step, in CopyInputs) (StepResult, error) {
	chown := s.Op.Copy.Chown
	pendingOK := in.Pending && !s.Op.Copy.Add && e.opts.Snapshots.Overlay()
	x := &stepExec{Step: s, linked: in.Link}
	x.do = func(ctx context.Context, root string) error {
		var owner *source.Owner
		if chown != "" {
			u, err := exec.ResolveFileOwner(root, chown)
			switch {
			case errors.Is(err, exec.ErrNotInImage) && !errors.Is(err, exec.ErrNoIDFile):
				// BuildKit v0.32 copies with the ids it has, without a word.
				if e.opts.Warn != nil {
					e.opts.Warn(fmt.Sprintf("%s --chown=%s: %v; the files are owned by %d:%d, as BuildKit does", in.Name, chown, err, u.UID, u.GID))
				}
			case err != nil:
				return fmt.Errorf("%s --chown=%s: %w", in.Name, chown, err)
			}
			owner = &source.Owner{UID: u.UID, GID: u.GID}
		}
		if pendingOK {
			x.pending = source.NewPending(root) // one for all parts: later ones replace earlier files
		}
		for _, p := range in.Parts {
			src := p.Source
			if p.Fetch != nil {
				var err error
				if src, err = p.Fetch(ctx); err != nil {
					return fmt.Errorf("%s failed: %w", in.Name, err)
				}
			}
			opts := p.Options
			opts.Chown = owner
			opts.Pending = x.pending
			if err := source.Copy(ctx, src, root, opts); err != nil {
				return fmt.Errorf("%s failed: %w", in.Name, err)
			}
		}
		return nil
	}
	return e.step(ctx, st, x)
}

// Workdir executes a WORKDIR op (s.Op.Workdir): it creates the directory owned by
// the op's user, as BuildKit does, with a file op whose owner rules
// (exec.ResolveFileOwner) do not fail for a user the image lacks. The directory is
// then root's, and one that exists already is left as it is.
func (e *Engine) Workdir(ctx context.Context, st State, s Step) (StepResult, error) {
	wd, user := s.Op.Workdir.Path, s.Op.Workdir.User
	return e.step(ctx, st, &stepExec{Step: s, do: func(ctx context.Context, root string) error {
		var owner source.Owner
		if user != "" {
			u, err := exec.ResolveFileOwner(root, user)
			if err != nil && !errors.Is(err, exec.ErrNotInImage) {
				return fmt.Errorf("WORKDIR %s: USER %s: %w", wd, user, err)
			}
			owner = source.Owner{UID: u.UID, GID: u.GID}
		}
		// BuildKit makes the path as written, component by component, the way
		// os.MkdirAll does: WORKDIR /srv/./a/../b creates /srv/a as well as /srv/b
		// (measured with buildctl), though the working dir is /srv/b.
		cur := "/"
		for _, c := range strings.Split(wd, "/") {
			if c == "" || c == "." {
				continue
			}
			cur = path.Join(cur, c)
			if c == ".." {
				continue
			}
			if _, err := source.MkdirAll(root, cur, source.NewDir(owner)); err != nil {
				return fmt.Errorf("WORKDIR %s: %w", wd, err)
			}
		}
		return nil
	}})
}

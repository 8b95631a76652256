package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source"
)

// cacheMount resolves a type=cache mount to its dir in the store and holds it as
// its sharing mode asks until the step ends:
//
//   - shared: every step of every build uses the one dir at once;
//   - locked: an exclusive flock on the dir (beside it, so the step cannot see it)
//     makes other locked or private users wait, across kiln processes;
//   - private: a step that finds the dir in use takes the first free numbered
//     sibling, so concurrent writers never share one.
//
// As in BuildKit, a cache is identified by its id (default: the target as written)
// and the base it was created from: the from/source seed, or the uid, gid and mode
// of its root. The seed is copied in, and the ownership set, only when the dir is
// created. Its content never enters a layer or a cache key.
//
// The solver.MountOp it returns is what the step's key holds of the mount (the caller adds
// the target): as BuildKit's, every option but the id and the sharing mode, with the
// digest of the seed's selected content.
func (b *build) cacheMount(ctx context.Context, sc *stepCtx, m *instructions.Mount, rm *runMounts) (string, solver.MountOp, error) {
	id := m.CacheID
	if id == "" {
		id = path.Clean(m.Target)
	}
	identity := id
	var seed *copySource
	srcPath := path.Join("/", m.Source)
	op := solver.MountOp{Type: "cache", ReadOnly: m.ReadOnly,
		UID: optString(m.UID, 10), GID: optString(m.GID, 10), Mode: optString(m.Mode, 8)}
	switch {
	case m.From != "":
		src, err := b.copySource(ctx, sc, copySpec{from: m.From, name: "RUN --mount=type=cache"})
		if err == nil {
			err = src.open(ctx)
		}
		if err != nil {
			return "", op, err
		}
		rm.releases = append(rm.releases, src.release)
		if _, err := bindSourcePath(src.src, srcPath); err != nil {
			return "", op, sc.errorf(b.opts.Filename, "RUN --mount=type=cache,from=%s,source=%s: %w", m.From, m.Source, err)
		}
		sum, err := b.selectionDigest(ctx, src, source.CopyOptions{Sources: []string{srcPath}, Dest: "/", Line: sc.cmd.Line})
		if err != nil {
			return "", op, sc.errorf(b.opts.Filename, "RUN --mount=type=cache,from=%s,source=%s: %w", m.From, m.Source, err)
		}
		seed = src
		op.Source, op.Content = srcPath, sum.Digest
		identity += fmt.Sprintf("\x00from=%s:%s@%s", m.From, srcPath, sum.Digest)
	case m.Source != "" && srcPath != "/":
		return "", op, sc.errorf(b.opts.Filename, "RUN --mount=type=cache,source=%s needs from= (the stage or image to seed the cache from)", m.Source)
	}
	own := seed == nil && (m.UID != nil || m.GID != nil || m.Mode != nil)
	if own {
		identity += fmt.Sprintf("\x00own=%s:%s:%s", optNum(m.UID, 10), optNum(m.GID, 10), optNum(m.Mode, 8))
	}

	var dir string
	var lock *os.File
	var err error
	name := identity
	switch m.CacheSharing {
	case instructions.MountSharingLocked:
		if dir, err = b.eng.CacheMountDir(ctx, identity); err == nil {
			lock, err = lockCacheDir(ctx, dir, true)
		}
	case instructions.MountSharingPrivate:
		for n := 0; err == nil && lock == nil; n++ {
			name = identity
			if n > 0 {
				name = fmt.Sprintf("%s\x00private=%d", identity, n)
			}
			if dir, err = b.eng.CacheMountDir(ctx, name); err == nil {
				lock, err = lockCacheDir(ctx, dir, false)
			}
		}
	default:
		dir, err = b.eng.CacheMountDir(ctx, identity)
	}
	if err != nil {
		return "", op, fmt.Errorf("cache mount %s: %w", id, err)
	}
	rm.cacheIDs = append(rm.cacheIDs, name)
	if lock != nil {
		rm.releases = append(rm.releases, func() { lock.Close() })
	}
	if err := b.initCacheDir(ctx, sc, dir, m, seed, srcPath, own, lock != nil); err != nil {
		return "", op, fmt.Errorf("cache mount %s: %w", id, err)
	}
	return dir, op, nil
}

// lockCacheDir takes an exclusive flock on dir's lock file, waiting for it when wait
// is set, else returning nil if another step holds it.
func lockCacheDir(ctx context.Context, dir string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if !wait {
			f.Close()
			return nil, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// initCacheDir gives a cache dir its base the first time it is used: the seed's
// content or the requested ownership. A marker beside the dir records that it was
// done; a step that does not hold the dir's lock takes it for the while.
func (b *build) initCacheDir(ctx context.Context, sc *stepCtx, dir string, m *instructions.Mount, seed *copySource, srcPath string, own, locked bool) error {
	marker := dir + ".init"
	if seed == nil && !own {
		return nil
	}
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if !locked {
		lock, err := lockCacheDir(ctx, dir, true)
		if err != nil {
			return err
		}
		defer lock.Close()
		if _, err := os.Stat(marker); err == nil {
			return nil
		}
	}
	if seed != nil {
		if err := source.Copy(ctx, seed.src, dir, source.CopyOptions{Sources: []string{srcPath}, Dest: "/", Line: sc.cmd.Line}); err != nil {
			return fmt.Errorf("seed from %s:%s: %w", m.From, srcPath, err)
		}
	} else {
		if err := os.Lchown(dir, optID(m.UID), optID(m.GID)); err != nil {
			return err
		}
		mode := uint32(0o755)
		if m.Mode != nil {
			mode = uint32(*m.Mode)
		}
		if err := os.Chmod(dir, fileModeFromUnix(mode)); err != nil {
			return err
		}
	}
	return os.WriteFile(marker, nil, 0o600)
}

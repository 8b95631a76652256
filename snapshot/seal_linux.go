package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Why committed snapshots are sealed.
//
// A committed snapshot's tree never changes: overlay mounts it as a read-only lower,
// steps write only into their own upper dir, and outputs only read it. So the lstat of
// each of its entries is the same every time it is read, unless something outside kiln
// changed the tree. A write that keeps a file's size and puts its mtime back still
// moves the file's ctime, which no user-space call can set back. publish records that
// state, a digest of every entry's lstat, as the snapshot's seal (seals/<id>), and
// Verify compares it with the tree's: a damaged snapshot is found before a step runs
// over it, at the cost of one lstat per entry and no read of content. (The full check,
// a fresh tar of the tree against the layer, is TreeDiffID, for outputs and kiln check.)
//
// The snapshot's own root dir is sealed without its times: renaming the dir into
// committed/ moves its ctime.
//
// A seal holds the root dir's inode number before the digest. A root restored from
// a copy (a CI cache's tarball, rsync, cp -a) has new inodes and ctimes throughout:
// such a snapshot was not changed in place, and is sealed again as it is, as one
// without a seal is, rather than reported damaged and unpacked again on every run.

// sealFormat versions the encoding the seal is the digest of.
const sealFormat = "kiln.snapshot.seal.v1"

// DamagedError says a committed snapshot's tree changed since it was committed.
type DamagedError struct {
	ID string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("snapshot %s was damaged: its files were changed after it was committed", e.ID)
}

// Verify checks committed snapshot id against its seal: a *DamagedError if its tree
// changed since it was committed. A snapshot without a seal (committed by a kiln
// before seals, or when publishing was cut short) is sealed as it is now: it is
// trusted once, as it was before.
func (s *Snapshotter) Verify(ctx context.Context, id string) error {
	if !s.Exists(id) {
		return fmt.Errorf("verify snapshot %s: %w", id, fs.ErrNotExist)
	}
	want, err := os.ReadFile(s.sealPath(id))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(want) != sealSize) {
		// None, or one cut short by power loss (seals are not fsynced).
		return s.sealExisting(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("read the seal of snapshot %s: %w", id, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.Path(id), &st); err != nil {
		return fmt.Errorf("verify snapshot %s: %w", id, err)
	}
	if binary.BigEndian.Uint64(want) != st.Ino {
		return s.sealExisting(ctx, id) // a restored copy of the root
	}
	got, err := treeSeal(ctx, s.Path(id))
	if err != nil {
		return fmt.Errorf("verify snapshot %s: %w", id, err)
	}
	if !bytes.Equal(got, want) {
		return &DamagedError{ID: id}
	}
	return nil
}

// sealSize is a seal's length: the root dir's inode number, then the digest.
const sealSize = 8 + sha256.Size

// sealExisting seals committed snapshot id as its tree is now.
func (s *Snapshotter) sealExisting(ctx context.Context, id string) error {
	w, err := newWorkDir(s.dir("tmp"))
	if err != nil {
		return fmt.Errorf("seal snapshot %s: %w", id, err)
	}
	defer w.remove()
	seal, err := treeSeal(ctx, s.Path(id))
	if err != nil {
		return fmt.Errorf("seal snapshot %s: %w", id, err)
	}
	if err := os.WriteFile(w.sub("seal"), seal, 0o644); err != nil {
		return fmt.Errorf("seal snapshot %s: %w", id, err)
	}
	return s.placeSeal(w.sub("seal"), id)
}

func (s *Snapshotter) sealPath(id string) string { return filepath.Join(s.dir("seals"), id) }

// placeSeal renames the seal file at p to id's: like a snapshot's files, a seal is not
// fsynced (a seal lost to power loss only makes the snapshot sealed again as it is).
func (s *Snapshotter) placeSeal(p, id string) error {
	if err := os.Rename(p, s.sealPath(id)); err != nil {
		return fmt.Errorf("seal snapshot %s: %w", id, err)
	}
	return nil
}

// treeSeal is dir's seal: its inode number, then the digest of the lstat of every
// entry under it, as a Merkle tree: each directory's digest is over its entries'
// records, in name order, then its subdirectories' digests. Subdirectories are walked
// on two goroutines when one is free (lstat is kernel time: the 6,800 entries of a
// Debian base took 15-25 ms on one).
func treeSeal(ctx context.Context, dir string) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, err
	}
	var g errgroup.Group
	g.SetLimit(sealWorkers - 1) // the caller's goroutine walks too
	sum, err := dirSeal(ctx, &g, dir, "")
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte(sealFormat))
	h.Write(entryRecord(nil, "", &st, false))
	h.Write(sum)
	return h.Sum(binary.BigEndian.AppendUint64(nil, st.Ino)), nil
}

const sealWorkers = 2

// entryRecord appends the record of one entry to b: its path, then the fields of its
// lstat, times only if times.
func entryRecord(b []byte, rel string, st *unix.Stat_t, times bool) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(rel)))
	b = append(b, rel...)
	for _, v := range [...]uint64{uint64(st.Mode), uint64(st.Uid), uint64(st.Gid), uint64(st.Size),
		st.Ino, uint64(st.Nlink), st.Rdev} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	if times {
		for _, t := range [...]unix.Timespec{st.Mtim, st.Ctim} {
			b = binary.BigEndian.AppendUint64(b, uint64(t.Nano()))
		}
	}
	return b
}

// dirSeal is the digest of directory rel under root: its entries' records, then each
// subdirectory's digest, both in name order. A subdirectory is walked on g when g has
// a goroutine free, else here.
func dirSeal(ctx context.Context, g *errgroup.Group, root, rel string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	full := filepath.Join(root, rel)
	f, err := os.Open(full)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	h := sha256.New()
	var rec []byte
	var st unix.Stat_t
	type sub struct {
		sum  []byte
		err  error
		done chan struct{}
	}
	var subs []*sub
	for _, n := range names {
		if err := unix.Fstatat(int(f.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: filepath.Join(full, n), Err: err}
		}
		p := n
		if rel != "" {
			p = rel + "/" + n
		}
		rec = entryRecord(rec[:0], p, &st, true)
		h.Write(rec)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		s := &sub{done: make(chan struct{})}
		subs = append(subs, s)
		walk := func() error {
			defer close(s.done)
			s.sum, s.err = dirSeal(ctx, g, root, p)
			return nil // s.err is the parent's to return
		}
		if !g.TryGo(walk) {
			walk()
		}
	}
	for _, s := range subs {
		<-s.done
		if s.err != nil {
			return nil, s.err
		}
		h.Write(s.sum)
	}
	return h.Sum(nil), nil
}

// Rebuild makes committed snapshot id again with fill, when it is damaged: the new
// tree is filled beside it and exchanged with the old one in one rename
// (RENAME_EXCHANGE), so the id never names a missing or half-made tree, and a fill
// that fails leaves the old tree where it was. The old tree is removed after. Rebuilds
// on one root are serialised by a lock, and the snapshot is verified again under it:
// one that another process has just rebuilt is kept (rebuilt is false). A snapshot
// that is not there is made as Ingest makes it. (A build of another process running
// a step over the old tree at that moment loses it under its mount: it was building
// on the damaged tree already, which its own check would have found.)
func (s *Snapshotter) Rebuild(ctx context.Context, id string, fill func(dir string) error) (rebuilt bool, err error) {
	if err := ValidateID(id); err != nil {
		return false, err
	}
	unlock, err := s.lockRebuilds()
	if err != nil {
		return false, fmt.Errorf("rebuild snapshot %s: %w", id, err)
	}
	defer unlock()
	if !s.Exists(id) {
		return true, s.Ingest(ctx, id, fill)
	}
	var damaged *DamagedError
	if err := s.Verify(ctx, id); err == nil {
		return false, nil
	} else if !errors.As(err, &damaged) && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	w, err := newWorkDir(s.dir("tmp"))
	if err != nil {
		return false, fmt.Errorf("rebuild snapshot %s: %w", id, err)
	}
	defer w.remove() // after the exchange, the old tree
	data := w.sub("data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return false, fmt.Errorf("rebuild snapshot %s: %w", id, err)
	}
	if err := fill(data); err != nil {
		return false, fmt.Errorf("rebuild snapshot %s: %w", id, err)
	}
	seal, err := treeSeal(ctx, data)
	if err != nil {
		return false, fmt.Errorf("seal snapshot %s: %w", id, err)
	}
	if err := os.WriteFile(w.sub("seal"), seal, 0o644); err != nil {
		return false, fmt.Errorf("seal snapshot %s: %w", id, err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, data, unix.AT_FDCWD, s.Path(id), unix.RENAME_EXCHANGE); err != nil {
		return false, fmt.Errorf("rebuild snapshot %s: put the new tree in place: %w", id, err)
	}
	// A kill here leaves the new tree with the old seal, whose root inode is not
	// the new tree's: Verify seals it again as it is.
	return true, s.placeSeal(w.sub("seal"), id)
}

// lockRebuilds takes the root's rebuild lock (an flock, dropped by the kernel if
// this process dies) and returns its release.
func (s *Snapshotter) lockRebuilds() (func(), error) {
	f, err := os.OpenFile(s.dir("rebuild.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/lease"
)

// lockShared opens path and takes a shared flock on it, waiting while a Prune holds
// it exclusively.
func lockShared(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := flockWait(ctx, f, unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// flockWait takes how (LOCK_SH or LOCK_EX) on f, polling so ctx can cancel the wait.
// Converting a held lock is not atomic (flock(2)): the old lock is dropped first, so two
// processes upgrading at once cannot deadlock.
func flockWait(ctx context.Context, f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Temp files and dirs under tmp/ are named for the Store that made them:
//
//	tmp/<owner>.owner    leased (package lease) by that Store from Open to Close
//	tmp/<owner>-<name>   its blobs being written, pulls, scratch dirs
//
// The owner file exists, leased, before any of its entries, so an entry whose owner
// file is gone or can be leased by another Store belongs to no live build.
const ownerSuffix = ".owner"

// ownerIDLen is the length of an owner id: 16 hex digits.
const ownerIDLen = 16

// staleTempAge is how old a temp entry named the way kiln did before owner leases
// (blob-<pid>-…, blobs/sha256/.incoming-…) must be before it is taken for a leftover:
// such a name says nothing about whether its writer is alive.
const staleTempAge = 24 * time.Hour

// takeOwnership creates and leases this Store's owner file in tmp/.
func (s *Store) takeOwnership() error {
	for try := 0; try < 5; try++ {
		var b [ownerIDLen / 2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		id := hex.EncodeToString(b[:])
		p := s.path("tmp", id+ownerSuffix)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		l, err := lease.Hold(f, p)
		if err != nil {
			f.Close()
			if errors.Is(err, lease.ErrHeld) || errors.Is(err, os.ErrNotExist) {
				continue // a starting Store's cleanup examined it: take another name
			}
			return err
		}
		s.owner, s.ownerFile, s.ownerID = l, f, id
		return nil
	}
	return fmt.Errorf("could not lease an owner file in %s", s.path("tmp"))
}

// releaseOwnership removes what this Store left in tmp/ and its owner file, then drops
// the lease (removing first: once released, another Store may clean the same names).
func (s *Store) releaseOwnership() error {
	if s.owner == nil {
		return nil
	}
	var errs []error
	mine, _ := filepath.Glob(s.path("tmp", s.ownerID+"-*"))
	for _, p := range mine {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(s.path("tmp", s.ownerID+ownerSuffix)); err != nil {
		errs = append(errs, err)
	}
	s.owner.Release()
	s.ownerFile.Close()
	s.owner, s.ownerFile = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean temp files of store %s: %w", s.root, err)
	}
	return nil
}

// cleanTemp removes what builds that are gone left in tmp/ (their owner leases are
// free) and pre-lease leftovers older than staleTempAge. It never removes an entry
// whose owner is alive, in this process or another.
func (s *Store) cleanTemp() error {
	dir := s.path("tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	owners := map[string]ownerState{}
	var dead []*lease.Lease
	defer func() {
		for _, l := range dead {
			l.Release()
		}
	}()
	// state is looked up when needed rather than from the listing: an owner file
	// created while the dir was listed may be missing from it while its entry is not.
	state := func(id string) ownerState {
		st, ok := owners[id]
		if ok {
			return st
		}
		l, err := lease.Take(filepath.Join(dir, id+ownerSuffix))
		switch {
		case err == nil:
			st = ownerDead
			dead = append(dead, l)
		case errors.Is(err, lease.ErrHeld):
			st = ownerAlive
		default:
			st = ownerGone
		}
		owners[id] = st
		return st
	}
	var errs []error
	remove := func(p string) {
		if err := os.RemoveAll(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, e := range entries {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, ownerSuffix); ok && validOwnerID(id) {
			state(id) // removed below, after its entries, if its Store is gone
			continue
		}
		id, _, ok := strings.Cut(name, "-")
		if ok && validOwnerID(id) {
			if id != s.ownerID && state(id) != ownerAlive {
				remove(filepath.Join(dir, name))
			}
			continue
		}
		if olderThan(e, staleTempAge) {
			remove(filepath.Join(dir, name))
		}
	}
	for id, st := range owners {
		if st == ownerDead {
			remove(filepath.Join(dir, id+ownerSuffix))
		}
	}
	// Pulls before owner leases wrote beside the blobs.
	incoming, _ := filepath.Glob(s.path("blobs", "sha256", ".incoming-*"))
	for _, p := range incoming {
		if fi, err := os.Lstat(p); err == nil && time.Since(fi.ModTime()) > staleTempAge {
			remove(p)
		}
	}
	return errors.Join(errs...)
}

type ownerState int

const (
	ownerGone  ownerState = iota // no owner file: closed, or cleaned by another Store
	ownerDead                    // owner file whose lease this Store now holds
	ownerAlive                   // leased by a live Store
)

func validOwnerID(id string) bool {
	if len(id) != ownerIDLen {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func olderThan(e os.DirEntry, age time.Duration) bool {
	fi, err := e.Info()
	return err == nil && time.Since(fi.ModTime()) > age
}

// TempDir creates a scratch dir under tmp/ (on the store's filesystem) and returns its
// path, as os.MkdirTemp does with pattern. The caller removes it when done; if the
// build dies first, the next Store to open the root removes it, while a live build's
// dirs are never touched.
func (s *Store) TempDir(pattern string) (string, error) {
	if s.owner == nil {
		return "", fmt.Errorf("temp dir %s: store %s is closed", pattern, s.root)
	}
	dir, err := os.MkdirTemp(s.path("tmp"), s.ownerID+"-"+pattern)
	if err != nil {
		return "", fmt.Errorf("temp dir in store %s: %w", s.root, err)
	}
	return dir, nil
}

// CreateTemp creates a temp file under tmp/, as os.CreateTemp does with pattern: on the
// blobs' filesystem, so it can be renamed into blobs/. Leftovers are removed as
// TempDir's are.
func (s *Store) CreateTemp(pattern string) (*os.File, error) {
	if s.owner == nil {
		return nil, fmt.Errorf("temp file %s: store %s is closed", pattern, s.root)
	}
	f, err := os.CreateTemp(s.path("tmp"), s.ownerID+"-"+pattern)
	if err != nil {
		return nil, fmt.Errorf("temp file in store %s: %w", s.root, err)
	}
	return f, nil
}

package cache

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// What a build writes becomes durable with syncfs rather than an fsync per file
// (snapshots, meta.db; blobs are fsynced as they are committed). One syncfs at Close
// made every cold build wait for all of it at its very end: 0.26-0.29 s for W5's
// 200 MB base snapshot on the bench machine, a large share of a 2 s build. So the
// commit of a big blob (a base layer pulled, a big step's layer: it comes with a big
// snapshot) also starts a syncfs in the background, at most one at a time: the disk
// writes that snapshot while the next steps and the export run, and Close's own
// syncfs finds little left to do. Small commits start none: on a journaled
// filesystem a syncfs after each of W1's 20 small RUN steps cost it 0.05 s.
//
// The background calls only start the disk's work early. Close still ends with a
// syncfs of its own whenever the store was written to, so everything written
// before Close (a step entry recorded after the last background syncfs, say) is
// durable once it returns, as before; that last syncfs returns the errors.

// syncer runs a Store's background syncfs calls. Its zero value is ready; it starts
// its goroutine on the first kick.
type syncer struct {
	once sync.Once
	kick chan struct{} // buffered 1: a kick while a syncfs runs asks for one more
	stop chan struct{}
	done chan struct{}
	// sync is what a kick runs: Store.Sync, or a test's stand-in.
	sync func() error
}

// markDirty records that the store has writes waiting for a syncfs and, with
// background set, asks for one in the background.
func (s *Store) markDirty(background bool) {
	s.dirty.Store(true)
	if !background {
		return
	}
	s.syncer.once.Do(func() {
		s.syncer.kick = make(chan struct{}, 1)
		s.syncer.stop = make(chan struct{})
		s.syncer.done = make(chan struct{})
		if s.syncer.sync == nil {
			s.syncer.sync = s.Sync
		}
		go s.syncLoop()
	})
	select {
	case s.syncer.kick <- struct{}{}:
	default: // one is already asked for
	}
}

func (s *Store) syncLoop() {
	defer close(s.syncer.done)
	for {
		select {
		case <-s.syncer.stop:
			return
		case <-s.syncer.kick:
			_ = s.syncer.sync() // Close's syncfs reports what fails
		}
	}
}

// stopSyncer waits for a background syncfs in progress and ends the goroutine.
func (s *Store) stopSyncer() {
	if s.syncer.stop == nil {
		return
	}
	close(s.syncer.stop)
	<-s.syncer.done
	s.syncer.stop = nil
}

// Sync flushes the filesystem holding the store to disk (syncfs): snapshots, blobs and
// meta.db at once, so one call replaces an fsync per file.
func (s *Store) Sync() error {
	f, err := os.Open(s.root)
	if err != nil {
		return fmt.Errorf("sync store: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync store %s: %w", s.root, err)
	}
	return nil
}

package cache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A big blob's commit starts a syncfs in the background, commits during one ask for
// one more, not one each, and Close waits for the goroutine and still syncs at the
// end; small blobs start none.
func TestBackgroundSync(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	release := make(chan struct{})
	s.syncer.sync = func() error {
		calls.Add(1)
		<-release
		return nil
	}
	if err := putLayerEntry(ctx, s, "small"); err != nil {
		t.Fatal(err)
	}
	if s.syncer.done != nil {
		t.Fatal("a small blob started a background syncfs")
	}
	big := make([]byte, writebackEvery)
	putBig := func(b byte) {
		big[0] = b
		if _, err := s.WriteBlob(big); err != nil {
			t.Fatal(err)
		}
	}
	putBig(0)
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a blob commit started no background syncfs")
		}
		time.Sleep(time.Millisecond)
	}
	for b := byte(1); b < 4; b++ { // while the first syncfs runs
		putBig(b)
	}
	close(release)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("commits during a syncfs asked for no further one")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.syncer.done:
	default:
		t.Fatal("Close left the syncer running")
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d background syncfs calls for four big commits, want 2", n)
	}
}

// A store that was only read starts no syncer.
func TestNoSyncWithoutWrites(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.syncer.done != nil {
		t.Error("a store without writes started a syncer")
	}
}

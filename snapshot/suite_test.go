package snapshot_test

import (
	"context"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/snapshot/snapshottest"
)

func TestMain(m *testing.M) { snapshottest.Main(m) }

// The overlay stacker and the copy fallback pass one suite.
func TestSuite(t *testing.T) {
	snapshottest.Run(t, "overlay", func(t *testing.T, root string) *snapshot.Snapshotter {
		s, err := snapshot.New(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Overlay() {
			// As root, overlay mounts unless the root dir is itself on overlayfs.
			if testenv.OnCI() {
				t.Fatal("overlay cannot mount here")
			}
			t.Skip("overlay cannot mount here")
		}
		return s
	})
	snapshottest.Run(t, "copy", func(t *testing.T, root string) *snapshot.Snapshotter {
		s, err := snapshot.New(context.Background(), root, snapshot.WithoutOverlay())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

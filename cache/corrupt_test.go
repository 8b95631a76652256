package cache

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A meta.db that power loss left corrupt is set aside and rebuilt: the store opens and
// works, and the bad file is kept beside it for inspection.
func TestOpenSetsCorruptIndexAside(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutStep(ctx, &Entry{Key: "k", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.WriteFile(filepath.Join(root, "meta.db"), []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, root)
	if err != nil {
		t.Fatalf("open with a corrupt index: %v", err)
	}
	defer s.Close()
	if _, ok, err := s.GetStep(ctx, "k"); err != nil || ok {
		t.Fatalf("GetStep after rebuild = ok %v, err %v; want a clean miss", ok, err)
	}
	if err := s.PutStep(ctx, &Entry{Key: "k2", Created: time.Now()}); err != nil {
		t.Fatalf("write after rebuild: %v", err)
	}
	aside, _ := filepath.Glob(filepath.Join(root, "meta.db.corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("corrupt index not kept aside: %v", aside)
	}
}

package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Of several goroutines recording one key at once, all get the first one's entry back.
func TestPutStepIfAbsent(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var wg sync.WaitGroup
	got := make([]*Entry, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := s.PutStepIfAbsent(ctx, &Entry{Key: "k", History: v1.History{CreatedBy: fmt.Sprintf("step %d", i)}})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = e
		}()
	}
	wg.Wait()
	stored, ok, err := s.GetStep(ctx, "k")
	if err != nil || !ok {
		t.Fatalf("GetStep: %v %v", ok, err)
	}
	for i, e := range got {
		if e == nil || e.History.CreatedBy != stored.History.CreatedBy {
			t.Errorf("writer %d got %+v, stored is %q", i, e, stored.History.CreatedBy)
		}
	}
	// A fresh key is recorded and returned as given.
	e, err := s.PutStepIfAbsent(ctx, &Entry{Key: "other", History: v1.History{CreatedBy: "step 9"}})
	if err != nil || e.History.CreatedBy != "step 9" {
		t.Errorf("fresh key: %+v, %v", e, err)
	}
}

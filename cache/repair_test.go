package cache

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

type fakeDamage struct{ h v1.Hash }

func (e *fakeDamage) Error() string        { return "store blob " + e.h.String() + " is damaged" }
func (e *fakeDamage) DamagedBlob() v1.Hash { return e.h }

// RepairBlobs removes each damaged blob a run finds and runs again; other errors and
// the last attempt's damage end it.
func TestRepairBlobs(t *testing.T) {
	s := openStore(t, t.TempDir())
	var blobs []v1.Hash
	for i := range 3 {
		h, err := s.WriteBlob([]byte(fmt.Sprint("blob ", i)))
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, h)
	}
	var warned []string
	warn := func(m string) { warned = append(warned, m) }

	// Two damaged blobs found one run each, then success.
	runs := 0
	err := s.RepairBlobs(4, warn, func() error {
		runs++
		if runs <= 2 {
			return fmt.Errorf("write oci output: %w", &fakeDamage{blobs[runs-1]})
		}
		return nil
	})
	if err != nil || runs != 3 || len(warned) != 2 || s.HasBlob(blobs[0]) || s.HasBlob(blobs[1]) || !s.HasBlob(blobs[2]) {
		t.Fatalf("err %v after %d runs, warnings %q, blobs kept %v %v %v", err, runs, warned, s.HasBlob(blobs[0]), s.HasBlob(blobs[1]), s.HasBlob(blobs[2]))
	}
	if !strings.Contains(warned[0], blobs[0].String()) {
		t.Errorf("warning %q does not name the blob", warned[0])
	}

	// Another error ends it at once; damage on the last attempt is returned.
	other := errors.New("RUN failed")
	runs = 0
	if err := s.RepairBlobs(4, warn, func() error { runs++; return other }); !errors.Is(err, other) || runs != 1 {
		t.Errorf("other error: %v after %d runs", err, runs)
	}
	runs = 0
	err = s.RepairBlobs(2, warn, func() error { runs++; return &fakeDamage{blobs[2]} })
	var d *fakeDamage
	if !errors.As(err, &d) || runs != 2 {
		t.Errorf("damage every run: %v after %d runs, want the damage after 2", err, runs)
	}
}

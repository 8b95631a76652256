package cache

import (
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// damagedBlob is an error that names a store blob found damaged as it was read
// (image.CorruptBlobError is one).
type damagedBlob interface {
	error
	DamagedBlob() v1.Hash
}

// RepairBlobs runs fn (a build and its outputs) until it succeeds, fails on anything
// but a damaged store blob, or has run attempts times. A damaged blob is removed and
// warned about before fn runs again, which makes or pulls what needed it; each run
// can find one more.
func (s *Store) RepairBlobs(attempts int, warn func(string), fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		var bad damagedBlob
		if !errors.As(err, &bad) || attempt >= attempts {
			return err
		}
		if rerr := s.RemoveBlob(bad.DamagedBlob()); rerr != nil {
			return fmt.Errorf("%w; removing it failed: %v", err, rerr)
		}
		warn(fmt.Sprintf("%v: removed it from the store; building again to make or pull what needs it", bad))
	}
}

package source

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// TempDirFunc makes a scratch dir whose name starts with pattern. The build passes
// its store's (Store.TempDir): a dir left by a killed build is removed when the
// next one opens the store, which os.MkdirTemp("") would leave behind for good.
type TempDirFunc func(pattern string) (string, error)

// DigestOf hashes its parts, separated so that ("ab","c") and ("a","bc") differ:
// the identity of a source's content where it has no digest of its own.
func DigestOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

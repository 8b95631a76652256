package exec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// InitName is the file name of kiln's small sandbox init (cmd/kiln-init), installed
// beside kiln.
const InitName = "kiln-init"

// InitBinary is the kiln-init beside the running kiln, used as the sandbox init
// (Spec.Init) when it is the very one kiln was built with. It has the same code as
// kiln's own init (it is MaybeInit and nothing else), without kiln's package
// initialisation: a step starts in ~3 ms instead of ~14.
//
// It is named by what it is: the file is opened and hashed once, at the first
// step, and started through that open descriptor, so a file replaced later (a
// rebuild during a long build) is never started. A kiln-init that is missing is
// fine (a kiln binary alone is a whole install) and one that does not match is
// never run; either way Path is "" and Run starts kiln itself.
type InitBinary struct {
	// Sum is the SHA-256 (hex) of the kiln-init built with this kiln; "" when it
	// was built without one (go install), which turns the lookup off.
	Sum string
	// Dir is where to look ("": the running executable's directory).
	Dir string
	// Warn is told once when the file is there but is not the one.
	Warn func(string)

	once sync.Once
	f    *os.File
}

// Path returns the path Spec.Init takes (a /proc/self/fd path to the verified
// file), or "" for kiln itself. It looks at the first call only.
func (b *InitBinary) Path() string {
	if b == nil || b.Sum == "" {
		return ""
	}
	b.once.Do(func() {
		f, err := openInit(b.Dir, b.Sum)
		if err != nil && b.Warn != nil {
			b.Warn(err.Error() + "; RUN steps start kiln itself as their init, ~10 ms slower each")
		}
		b.f = f
	})
	if b.f == nil {
		return ""
	}
	return "/proc/self/fd/" + strconv.Itoa(int(b.f.Fd()))
}

// Close closes the verified file, if one was opened.
func (b *InitBinary) Close() error {
	if b == nil || b.f == nil {
		return nil
	}
	return b.f.Close()
}

// openInit opens dir's kiln-init and checks its digest: nil, nil when there is none.
func openInit(dir, sum string) (*os.File, error) {
	if dir == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, nil
		}
		dir = filepath.Dir(self)
	}
	name := filepath.Join(dir, InitName)
	f, err := os.Open(name)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox init %s: %w", name, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox init %s: %w", name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		f.Close()
		return nil, fmt.Errorf("sandbox init %s is not the one this kiln was built with (sha256 %s, want %s): install kiln and kiln-init from the same build", name, got, sum)
	}
	return f, nil
}

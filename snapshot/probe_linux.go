package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/userns"
)

// probeResult is what probeOverlay found.
type probeResult struct {
	ok        bool
	newAPI    bool   // fsopen + "lowerdir+" works
	userxattr bool   // overlay mounts only with userxattr (inside a user namespace)
	volatile  bool   // a writable overlay mounts with volatile (Linux >= 5.10)
	reason    string // why overlay cannot be used, when !ok
}

// probeOverlay tests, in a scratch dir on the snapshot root's own filesystem, that
// the kernel can mount an overlay with our options and this filesystem as upper (it
// cannot when the root is itself on overlayfs, or without CAP_SYS_ADMIN), and that
// deleting a lower file leaves a 0/0 character device whiteout in the upper dir:
// the on-disk format package layers turns into ".wh." entries. It also reports
// whether the new mount API with "lowerdir+" is available.
//
// Inside a user namespace overlay cannot write trusted.* xattrs, so the kernel
// refuses the mount or (before 5.11) mounts without opaque dirs; there the probe
// asks for "userxattr" (Linux >= 5.11: bookkeeping in user.overlay.*) first, and
// also tests that creating a dir over a deleted one marks it opaque, which is what
// userxattr changes.
func probeOverlay(tmp string) (probeResult, error) {
	first := []bool{false, true}
	if userns.InNamespace() {
		first = []bool{true}
	}
	var r probeResult
	for _, ux := range first {
		var err error
		r, err = probeOverlayWith(tmp, ux)
		if err != nil || r.ok {
			return r, err
		}
	}
	return r, nil
}

func probeOverlayWith(tmp string, userxattr bool) (probeResult, error) {
	r := probeResult{userxattr: userxattr}
	w, err := newWorkDir(tmp)
	if err != nil {
		return r, err
	}
	defer w.remove()
	lower, upper, work, merged := w.sub("lower"), w.sub("upper"), w.sub("work"), w.sub("merged")
	for _, d := range []string{lower, upper, work, merged, filepath.Join(lower, "d")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return r, err
		}
	}
	for _, f := range []string{filepath.Join(lower, "f"), filepath.Join(lower, "d", "g")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return r, err
		}
	}
	spec := mountSpec{lowers: []string{lower}, upper: upper, work: work, target: merged, userxattr: userxattr, volatile: true}
	mount := func() error {
		r.newAPI = true
		err := mountOverlayFsconfig(spec)
		if errors.Is(err, errNoNewAPI) {
			r.newAPI = false
			err = mountOverlayClassic(spec)
		}
		return err
	}
	err = mount()
	if errors.Is(err, unix.EINVAL) {
		// A kernel before 5.10 does not know volatile.
		spec.volatile = false
		err = mount()
	}
	r.volatile = err == nil && spec.volatile
	if err != nil {
		r.reason = fmt.Sprintf("mount refused: %v", err)
		if errors.Is(err, unix.EPERM) {
			r.reason += "; kiln needs CAP_SYS_ADMIN in its user namespace and Linux >= 5.11 for overlay there"
		}
		return r, nil
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	if err := os.Remove(filepath.Join(merged, "f")); err != nil {
		r.reason = fmt.Sprintf("delete through the overlay: %v", err)
		return r, nil
	}
	if !isWhiteoutPath(filepath.Join(upper, "f")) {
		r.reason = "deleting a file left no 0/0 whiteout in the upper dir"
		return r, nil
	}
	d := filepath.Join(merged, "d")
	if err := os.RemoveAll(d); err != nil {
		r.reason = fmt.Sprintf("delete a dir through the overlay: %v", err)
		return r, nil
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		r.reason = fmt.Sprintf("recreate a dir through the overlay: %v", err)
		return r, nil
	}
	if !isOpaque(filepath.Join(upper, "d")) {
		r.reason = "a dir recreated over a deleted one was not marked opaque (no xattr namespace overlay can write)"
		return r, nil
	}
	r.ok = true
	return r, nil
}

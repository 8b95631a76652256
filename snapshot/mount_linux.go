package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// overlayOptions are set on every overlay kiln mounts. The layer differ (package
// layers) reads the upper dir as a plain tree: with redirect_dir a renamed dir becomes
// an empty dir carrying a trusted.overlay.redirect xattr that points into a lower
// layer, and with metacopy a chmod copies up only an inode whose data lives below
// (trusted.overlay.metacopy). Neither can be expressed in an OCI layer without reading
// the lower layers, so both are off and every copy-up is a full copy. index=off because
// the inode index only matters for hard links across layers and NFS export, and it
// pins the lower layers to one upper (mounting a layer under two builds would fail).
var overlayOptions = [][2]string{{"index", "off"}, {"redirect_dir", "off"}, {"metacopy", "off"}}

// options are overlayOptions for spec. With userxattr the kernel refuses
// redirect_dir=off, which still follows redirects found in lower layers
// ("conflicting options: userxattr,redirect_dir=follow"): nofollow creates none and
// follows none, and kiln's lowers never carry one.
func (spec mountSpec) options() [][2]string {
	if !spec.userxattr {
		return overlayOptions
	}
	out := make([][2]string, 0, len(overlayOptions))
	for _, o := range overlayOptions {
		if o[0] == "redirect_dir" {
			o[1] = "nofollow"
		}
		out = append(out, o)
	}
	return out
}

// mountSpec describes one overlay mount. lowers are top first, as overlay wants them.
type mountSpec struct {
	lowers       []string
	upper, work  string
	target       string
	classicMount bool // use mount(2) even where the new mount API works
	// userxattr makes overlay keep its bookkeeping in user.overlay.* (Linux >= 5.11),
	// the only namespace it can write when mounted inside a user namespace.
	userxattr bool
	// volatile (Linux >= 5.10, a writable mount only) makes overlay skip every
	// sync to the upper filesystem: the fsyncs of the step's own programs (dpkg
	// fsyncs each file it unpacks) and the syncfs of the whole upper filesystem at
	// unmount, ~1 ms of every step. What a step leaves is made durable by kiln
	// instead: its layer blob is fsynced when committed, and the snapshot with the
	// store's one syncfs at close, as every snapshot file already is (a commit
	// survives kill -9, not a power loss before close). Overlay refuses to mount a
	// work dir a volatile mount used again; kiln never does, each Active has its own.
	volatile bool
}

// mountOverlay mounts spec, preferring the new mount API: it passes each lower with
// its own "lowerdir+" fsconfig call (kernel >= 6.8), so neither the 4096-byte limit on
// mount(2)'s data page nor overlay's ':' and ',' escaping applies.
func mountOverlay(spec mountSpec) error {
	if len(spec.lowers) > maxOverlayLowers {
		// Both mount APIs fail with a bare EINVAL (the new one logs the reason).
		return fmt.Errorf("overlay: a stack of %d layers is more than the %d overlayfs can mount; build with fewer layers (squash some RUN steps) or with the copy snapshotter", len(spec.lowers), maxOverlayLowers)
	}
	if !spec.classicMount {
		err := mountOverlayFsconfig(spec)
		if err == nil || !errors.Is(err, errNoNewAPI) {
			return err
		}
	}
	return mountOverlayClassic(spec)
}

// maxOverlayLowers is the kernel's limit on an overlay's lower layers (OVL_MAX_STACK
// in fs/overlayfs).
const maxOverlayLowers = 500

var errNoNewAPI = errors.New("new mount API or lowerdir+ unsupported")

func mountOverlayFsconfig(spec mountSpec) (err error) {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%w: fsopen: %v", errNoNewAPI, err)
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	// The kernel explains rejected parameters in the fs context log; add it to errors.
	wrap := func(what string, err error) error {
		if msg := fsLog(fd); msg != "" {
			return fmt.Errorf("%s: %w (%s)", what, err, msg)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	for i, l := range spec.lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("%w: %v", errNoNewAPI, wrap("lowerdir+", err))
			}
			return wrap("overlay lowerdir+ "+l, err)
		}
	}
	if spec.upper != "" {
		if err := unix.FsconfigSetString(fd, "upperdir", spec.upper); err != nil {
			return wrap("overlay upperdir", err)
		}
		if err := unix.FsconfigSetString(fd, "workdir", spec.work); err != nil {
			return wrap("overlay workdir", err)
		}
	}
	for _, o := range spec.options() {
		if err := unix.FsconfigSetString(fd, o[0], o[1]); err != nil {
			return wrap("overlay option "+o[0], err)
		}
	}
	if spec.userxattr {
		if err := unix.FsconfigSetFlag(fd, "userxattr"); err != nil {
			return wrap("overlay option userxattr", err)
		}
	}
	if spec.volatile && spec.upper != "" {
		if err := unix.FsconfigSetFlag(fd, "volatile"); err != nil {
			return wrap("overlay option volatile", err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return wrap("create overlay", err)
	}
	attr := 0
	if spec.upper == "" {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return wrap("fsmount overlay", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, spec.target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move overlay mount to %s: %w", spec.target, err)
	}
	return nil
}

func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 8 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

// mountOverlayClassic mounts with mount(2). Its options must fit in one page, so when
// the absolute lowerdir list is too long it creates a dir of short symlinks ("0",
// "1", ...) to the lowers and mounts from a thread whose cwd is that dir, with the
// relative names as lowerdir (the trick Docker's overlay2 driver uses). Overlay
// resolves the links at mount time, so the link dir is removed right after.
func mountOverlayClassic(spec mountSpec) error {
	for _, p := range append(append([]string{}, spec.lowers...), spec.upper, spec.work) {
		if strings.ContainsAny(p, ":,") {
			return fmt.Errorf("overlay path %q contains ':' or ',' which mount(2) options cannot carry", p)
		}
	}
	data := classicData(spec.lowers, spec)
	if len(data) < unix.Getpagesize()-1 {
		return mountClassic(spec.target, data, spec.upper == "", "")
	}
	linkDir, err := os.MkdirTemp(filepath.Dir(spec.target), "l")
	if err != nil {
		return fmt.Errorf("overlay link dir: %w", err)
	}
	defer os.RemoveAll(linkDir)
	short := make([]string, len(spec.lowers))
	for i, l := range spec.lowers {
		short[i] = strconv.Itoa(i)
		if err := os.Symlink(l, filepath.Join(linkDir, short[i])); err != nil {
			return fmt.Errorf("overlay link: %w", err)
		}
	}
	data = classicData(short, spec)
	if len(data) >= unix.Getpagesize()-1 {
		return fmt.Errorf("overlay: %d lower layers do not fit in mount(2) options; this kernel lacks the new mount API (lowerdir+, Linux 6.8)", len(spec.lowers))
	}
	return mountClassic(spec.target, data, spec.upper == "", linkDir)
}

func classicData(lowers []string, spec mountSpec) string {
	opts := []string{"lowerdir=" + strings.Join(lowers, ":")}
	if spec.upper != "" {
		opts = append(opts, "upperdir="+spec.upper, "workdir="+spec.work)
	}
	for _, o := range spec.options() {
		opts = append(opts, o[0]+"="+o[1])
	}
	if spec.userxattr {
		opts = append(opts, "userxattr")
	}
	if spec.volatile && spec.upper != "" {
		opts = append(opts, "volatile")
	}
	return strings.Join(opts, ",")
}

// mountClassic calls mount(2), from a cwd of dir if set. The cwd is per process, so
// the mount runs on a locked OS thread that unshares its fs state (CLONE_FS) first; the
// thread is never unlocked, so the runtime destroys it instead of reusing a thread with
// a foreign cwd.
func mountClassic(target, data string, ro bool, dir string) error {
	var flags uintptr
	if ro {
		flags = unix.MS_RDONLY
	}
	if dir == "" {
		if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
			return fmt.Errorf("mount overlay at %s: %w", target, err)
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
			errc <- fmt.Errorf("mount overlay at %s: %w", target, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// unmount detaches target, lazily if it is busy (a process spawned by a step may still
// hold a cwd in it). Not mounted is not an error, so it is safe to call twice.
func unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// isWhiteoutPath reports whether p is an overlay whiteout: a 0/0 character device.
func isWhiteoutPath(p string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return isWhiteout(&st)
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

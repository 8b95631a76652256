package sandboxinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/userns"
)

// The sandbox's filesystem is the one runc gives a BuildKit RUN step: a fresh
// /proc with the kernel's sensitive files masked, a small /dev, a read-only /sys,
// the host's /etc/hosts and /etc/resolv.conf read-only, then the step's mounts.
// Everything runs inside the init's new mount namespace, on paths resolved with
// SecureJoin so that no symlink in the image leads a mount out of the rootfs; the
// image cannot change while this runs, as none of its processes exist yet.

// maskedPaths and readonlyPaths are Docker's defaults.
func maskedPaths() []string {
	return []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

func readonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

// devNode is a character device of the sandbox's /dev.
type devNode struct {
	name         string
	major, minor uint32
}

func devNodes() []devNode {
	return []devNode{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
}

// setupRootfs mounts everything the step sees under cfg.Rootfs.
func setupRootfs(cfg *Config) error {
	// Nothing done here may propagate to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// pivot_root needs the new root to be a mount point (the copy-based snapshot
	// fallback gives a plain directory).
	if err := unix.Mount(cfg.Rootfs, cfg.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs: %w", err)
	}
	steps := []func(*Config) error{mountProc, mountDev, mountSys, mountCgroupfs, mountMasks, mountNetFiles, mountUser}
	for _, step := range steps {
		if err := step(cfg); err != nil {
			return err
		}
	}
	return nil
}

// target resolves p inside the rootfs and creates it (a directory, or an empty
// file when dir is false) if missing. The parent created stubs already; this only
// creates targets that lie inside another of the step's mounts.
func target(rootfs, p string, dir bool) (string, error) {
	t, err := securejoin.SecureJoin(rootfs, p)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	if _, err := os.Lstat(t); err == nil {
		return t, nil
	}
	if dir {
		err = os.MkdirAll(t, 0o755)
	} else if err = os.MkdirAll(filepath.Dir(t), 0o755); err == nil {
		var f *os.File
		if f, err = os.OpenFile(t, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return "", fmt.Errorf("create mount point %s: %w", p, err)
	}
	return t, nil
}

func mountAt(rootfs, p string, dir bool, source, fstype string, flags uintptr, data string) error {
	t, err := target(rootfs, p, dir)
	if err != nil {
		return err
	}
	if err := unix.Mount(source, t, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, p, err)
	}
	return nil
}

func mountProc(cfg *Config) error {
	err := mountAt(cfg.Rootfs, "/proc", true, "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err == nil || !errors.Is(err, unix.EPERM) || !userns.InNamespace() {
		return err
	}
	t, err := target(cfg.Rootfs, "/proc", true)
	if err != nil {
		return err
	}
	return bindHostProc(t)
}

func mountDev(cfg *Config) error {
	r := cfg.Rootfs
	if err := mountAt(r, "/dev", true, "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	dev, err := securejoin.SecureJoin(r, "/dev")
	if err != nil {
		return err
	}
	for _, n := range devNodes() {
		p := filepath.Join(dev, n.name) // dev is our fresh tmpfs: no symlinks in it
		if err := mknodOrBind(p, "/dev/"+n.name, n.major, n.minor); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", n.name, err)
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return fmt.Errorf("mkdir /dev/%s: %w", d, err)
		}
	}
	mounts := []struct {
		name, fstype string
		flags        uintptr
		data         string
	}{
		{"pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%dk", shmKiB(cfg.ShmSize))},
		{"mqueue", "mqueue", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	}
	for _, m := range mounts {
		if m.name == "shm" && mountsAt(cfg, "/dev/shm") {
			// A step's own mount there replaces the default, as a mount of the same
			// destination replaces it in BuildKit's OCI spec: one /dev/shm, not
			// the default under it.
			continue
		}
		err := unix.Mount(m.fstype, filepath.Join(dev, m.name), m.fstype, m.flags, m.data)
		if errors.Is(err, unix.EINVAL) && m.fstype == "devpts" {
			// gid 5 (tty) is not mapped in a single-id user namespace.
			err = unix.Mount(m.fstype, filepath.Join(dev, m.name), m.fstype, m.flags, "newinstance,ptmxmode=0666,mode=0620")
		}
		if err != nil {
			return fmt.Errorf("mount %s on /dev/%s: %w", m.fstype, m.name, err)
		}
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	// As runc: /dev/core only where the kernel has /proc/kcore (CONFIG_PROC_KCORE),
	// not a symlink that dangles.
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// mountSys mounts a fresh read-only sysfs. The kernel only allows that to a holder of
// CAP_SYS_ADMIN over the network namespace, which kiln has as root; where it is
// refused (kiln in a user namespace with the host network), a recursive read-only
// bind of the host's /sys stands in.
func mountSys(cfg *Config) error {
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	err := mountAt(cfg.Rootfs, "/sys", true, "sysfs", "sysfs", flags, "")
	if err == nil || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) {
		return err
	}
	t, err := target(cfg.Rootfs, "/sys", true)
	if err != nil {
		return err
	}
	if err := unix.Mount("/sys", t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind /sys: %w", err)
	}
	cfg.sysBound = true
	return setattrRecursive(t, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
}

// mountMasks hides kernel files a step has no business reading (masked) or writing
// (read-only), as Docker does.
func mountMasks(cfg *Config) error {
	for _, p := range maskedPaths() {
		t, err := securejoin.SecureJoin(cfg.Rootfs, p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(t)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", t, "tmpfs", unix.MS_RDONLY, "size=0")
		} else {
			err = unix.Mount("/dev/null", t, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths() {
		t, err := securejoin.SecureJoin(cfg.Rootfs, p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(t); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := unix.Mount(t, t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s read-only: %w", p, err)
		}
		if err := setattrRecursive(t, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return err
		}
	}
	return nil
}

// mountsAt reports whether one of the step's mounts has target p.
func mountsAt(cfg *Config, p string) bool {
	for _, m := range cfg.Mounts {
		if path.Clean(m.Target) == p {
			return true
		}
	}
	return false
}

// shmKiB is /dev/shm's size in KiB: size bytes rounded up, 64 MiB by default.
func shmKiB(size int64) int64 {
	if size <= 0 {
		return 65536
	}
	return (size + 1023) / 1024
}

// mountNetFiles binds the step's name resolution files read-only, each a file of
// its own as BuildKit writes them: an /etc/hosts that names the step's hostname
// and the --add-host entries, and a copy of the host's resolv.conf, so the step
// resolves names as the host does (its network is the host's by default). Both
// are 0644 and root's whatever the host's file is, written in the step's own /dev
// tmpfs, bound, and unlinked, so they go with the sandbox.
func mountNetFiles(cfg *Config) error {
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		var src string
		var err error
		if f == "/etc/hosts" {
			src, err = writeHosts(cfg)
		} else {
			src, err = copyResolvConf(cfg)
		}
		if err != nil {
			return err
		}
		if src == "" {
			continue // the host has none: the step sees the image's (or an empty stub)
		}
		t, err := target(cfg.Rootfs, f, false)
		if err != nil {
			return err
		}
		if err := unix.Mount(src, t, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", f, err)
		}
		// The bind keeps the file; its name in /dev goes.
		if err := os.Remove(src); err != nil {
			return fmt.Errorf("remove %s: %w", src, err)
		}
		if err := setattrRecursive(t, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return err
		}
	}
	return nil
}

// mountUser sets up Spec.Mounts in order, so a later one may sit inside an earlier.
func mountUser(cfg *Config) error {
	for _, m := range cfg.Mounts {
		flags, data, err := mountFlags(m)
		if err != nil {
			return err
		}
		switch m.Type {
		case "bind":
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("bind mount source: %w", err)
			}
			t, err := target(cfg.Rootfs, m.Target, fi.IsDir())
			if err != nil {
				return err
			}
			if err := unix.Mount(m.Source, t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("bind %s on %s: %w", m.Source, m.Target, err)
			}
			if attr := mountAttrs(flags); attr != 0 {
				if err := setattrRecursive(t, attr); err != nil {
					return err
				}
			}
		case "tmpfs":
			if err := mountAt(cfg.Rootfs, m.Target, true, "tmpfs", "tmpfs", flags, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckOptions reports an option of m the init would refuse, for the parent to
// refuse the step before it starts.
func CheckOptions(m Mount) error {
	_, _, err := mountFlags(m)
	return err
}

// mountFlags splits m's options into mount flags and (for tmpfs) data. Bind mounts
// accept only flags.
func mountFlags(m Mount) (uintptr, string, error) {
	var flags uintptr
	if m.Type == "tmpfs" {
		flags = unix.MS_NOSUID | unix.MS_NODEV
	}
	if m.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	var data []string
	for _, o := range m.Options {
		switch o {
		case "ro", "readonly":
			flags |= unix.MS_RDONLY
		case "rw", "bind", "rbind", "":
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		case "noexec":
			flags |= unix.MS_NOEXEC
		default:
			if m.Type != "tmpfs" {
				return 0, "", fmt.Errorf("mount %s: unsupported option %q", m.Target, o)
			}
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ","), nil
}

func mountAttrs(flags uintptr) uint64 {
	var a uint64
	if flags&unix.MS_RDONLY != 0 {
		a |= unix.MOUNT_ATTR_RDONLY
	}
	if flags&unix.MS_NOSUID != 0 {
		a |= unix.MOUNT_ATTR_NOSUID
	}
	if flags&unix.MS_NODEV != 0 {
		a |= unix.MOUNT_ATTR_NODEV
	}
	if flags&unix.MS_NOEXEC != 0 {
		a |= unix.MOUNT_ATTR_NOEXEC
	}
	return a
}

// setattrRecursive applies attr to the mount at p and every mount below it: a plain
// MS_REMOUNT would leave the submounts of a recursive bind writable.
func setattrRecursive(p string, attr uint64) error {
	err := unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attr})
	if err != nil {
		return fmt.Errorf("set mount attributes of %s: %w", p, err)
	}
	return nil
}

// pivotRoot makes rootfs the root of the mount namespace and detaches the old root,
// with the pivot_root(".", ".") idiom that needs no directory for the old root.
func pivotRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// writeHosts writes the step's /etc/hosts into the sandbox's fresh /dev tmpfs and
// returns its host path: BuildKit's (localhost and the hostname on both loopbacks,
// never the host's entries), then the --add-host entries.
// copyResolvConf copies the host's /etc/resolv.conf into the step's /dev, "" when
// the host has none.
func copyResolvConf(cfg *Config) (string, error) {
	b, err := os.ReadFile("/etc/resolv.conf")
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the host's /etc/resolv.conf: %w", err)
	}
	p := filepath.Join(cfg.Rootfs, "dev", ".kiln-resolv.conf")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", fmt.Errorf("write /etc/resolv.conf: %w", err)
	}
	return p, nil
}

func writeHosts(cfg *Config) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", cfg.Hostname)
	for _, h := range cfg.Hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.IP, h.Name)
	}
	p := filepath.Join(cfg.Rootfs, "dev", ".kiln-hosts") // /dev is the step's own tmpfs
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("write /etc/hosts: %w", err)
	}
	return p, nil
}

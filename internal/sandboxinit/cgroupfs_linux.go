package sandboxinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// A step sees the cgroup filesystem, read-only, at /sys/fs/cgroup, as under runc:
// tools that size themselves from their cgroup (a JVM, Go's GOMAXPROCS, nproc in
// some libcs, systemd-detect-virt) read it there. It is mounted inside the step's
// cgroup namespace, so each hierarchy's root is the step's own cgroup (or, in a
// v1 hierarchy kiln does not limit, the cgroup kiln runs in). A unified host gets
// one cgroup2 mount; a v1 or hybrid host a tmpfs with one mount per v1 hierarchy
// the host has under /sys/fs/cgroup, named as there (runc leaves out the hybrid
// "unified" cgroup2 mount, and so does kiln). Symlinks the host keeps beside them
// (cpu -> cpu,cpuacct) are made too.

const cgroupRoot = "/sys/fs/cgroup"

// cgroupMountFlags are a step's cgroup mounts' flags, read-only as BuildKit's
// default spec asks.
const cgroupMountFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// mountCgroupfs mounts the cgroup filesystem at the rootfs's /sys/fs/cgroup. It
// runs after mountSys made a fresh sysfs; where that was a bind of the host's
// /sys (a user namespace with the host's network), the host's /sys/fs/cgroup came
// with it, read-only, and is left. A kernel that refuses a mount (a user
// namespace that does not own the cgroup namespace, a hierarchy whose options it
// will not match) leaves that part out: the cgroup filesystem is there for tools
// to read, and a step never fails for want of it.
func mountCgroupfs(cfg *Config) error {
	if cfg.sysBound {
		return nil
	}
	t, err := securejoin.SecureJoin(cfg.Rootfs, cgroupRoot)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", cgroupRoot, err)
	}
	if _, err := os.Lstat(t); err != nil {
		return nil // a kernel without cgroups has no /sys/fs/cgroup to mount on
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !(m.FSType == "cgroup" || m.FSType == "cgroup2") || !strings.HasPrefix(m.Mountpoint+"/", cgroupRoot+"/"), false
	})
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	for _, m := range mounts {
		if m.Mountpoint == cgroupRoot && m.FSType == "cgroup2" {
			_ = unix.Mount("cgroup2", t, "cgroup2", cgroupMountFlags, "")
			return nil
		}
	}
	var v1 []*mountinfo.Info
	for _, m := range mounts {
		if m.FSType == "cgroup" && filepath.Dir(m.Mountpoint) == cgroupRoot {
			v1 = append(v1, m)
		}
	}
	if len(v1) == 0 {
		return nil
	}
	// The tmpfs is 0555 and writable, as runc's under BuildKit (measured); it goes
	// with the step.
	if err := unix.Mount("tmpfs", t, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=555"); err != nil {
		return nil
	}
	for _, m := range v1 {
		name := filepath.Base(m.Mountpoint)
		dir := filepath.Join(t, name) // t is our fresh tmpfs: no symlinks in it
		if err := os.Mkdir(dir, 0o555); err != nil {
			return fmt.Errorf("mkdir %s/%s: %w", cgroupRoot, name, err)
		}
		// Refused: the directory stays, empty.
		_ = unix.Mount("cgroup", dir, "cgroup", cgroupMountFlags, cgroupV1Options(m.VFSOptions))
	}
	if ents, err := os.ReadDir(cgroupRoot); err == nil {
		for _, e := range ents {
			if e.Type()&os.ModeSymlink == 0 {
				continue
			}
			if dest, err := os.Readlink(filepath.Join(cgroupRoot, e.Name())); err == nil && !strings.Contains(dest, "/") {
				if err := os.Symlink(dest, filepath.Join(t, e.Name())); err != nil {
					return fmt.Errorf("symlink %s/%s: %w", cgroupRoot, e.Name(), err)
				}
			}
		}
	}
	return nil
}

// cgroupV1Options is the mount data that names a v1 hierarchy, from the host
// mount's superblock options: its controllers, name= and flags such as noprefix,
// without rw/ro and without release_agent= (the kernel lets only the initial
// namespace's root set one).
func cgroupV1Options(vfs string) string {
	var keep []string
	for _, o := range strings.Split(vfs, ",") {
		k, _, hasValue := strings.Cut(o, "=")
		if o == "" || o == "rw" || o == "ro" || (hasValue && k != "name") {
			continue
		}
		keep = append(keep, o)
	}
	return strings.Join(keep, ",")
}

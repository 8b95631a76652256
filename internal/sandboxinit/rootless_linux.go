package sandboxinit

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mknodOrBind creates the character device p, or where the kernel refuses device
// nodes (a user namespace) an empty file with the host's node of that name bound on
// it, as runc does for rootless containers.
func mknodOrBind(p, host string, major, minor uint32) error {
	err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(major, minor)))
	if err == nil || !errors.Is(err, unix.EPERM) {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(host, p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", host, err)
	}
	return nil
}

// bindHostProc stands in for a fresh procfs at t: a recursive bind of the /proc kiln
// sees, so the masks over it stay.
func bindHostProc(t string) error {
	if err := unix.Mount("/proc", t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind /proc: %w", err)
	}
	return setattrRecursive(t, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
}

// probeProc is the child of FreshProc: exit 0 when a fresh procfs mounts.
func probeProc() {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "kiln-proc-probe")
	if err != nil {
		os.Exit(1)
	}
	if err := unix.Mount("proc", dir, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		os.Remove(dir)
		os.Exit(1)
	}
	_ = unix.Unmount(dir, unix.MNT_DETACH)
	os.Remove(dir)
	os.Exit(0)
}

// setgroupsDenied reports whether this user namespace forbids setgroups(2), as a
// namespace with a single-id gid map must (user_namespaces(7)).
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && string(b) == "deny\n"
}

package exec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// binfmtConfDirs are where Debian's qemu-user-static puts its registrations, in
// systemd's binfmt.d format.
var binfmtConfDirs = []string{"/usr/lib/binfmt.d", "/etc/binfmt.d"}

// FindEmulator returns the binfmt_misc registration that runs arch's executables, or
// an *EmulatorError saying what is missing and how to register one. binfmt_misc not
// being mounted is no answer: as root outside a user namespace FindEmulator mounts it
// in the calling process's mount namespace (kiln build's private one: reading the
// registrations changes none); in a user namespace, where a mount would make an empty
// instance of its own, it reports no error and leaves the verdict to the kernel.
func FindEmulator(arch string) (Emulator, error) {
	mounted, err := binfmtMounted()
	if err != nil {
		return Emulator{}, err
	}
	if !mounted {
		if inUserNamespace() {
			return Emulator{}, nil
		}
		if err := mountBinfmt(); err != nil {
			return Emulator{}, err
		}
	}
	entries, err := readBinfmtEntries()
	if err != nil {
		return Emulator{}, err
	}
	return findEmulator(arch, entries)
}

// InstallEmulator registers Debian's qemu-user-static interpreter for arch (its
// /usr/lib/binfmt.d/qemu-NAME.conf) with the F flag, mounting binfmt_misc first if it
// is not. An entry of that name already registered is left as it is: added says
// whether this call registered it. As root only: it changes the host.
func InstallEmulator(arch string) (e Emulator, added bool, err error) {
	q, ok := QemuName(arch)
	if !ok {
		return Emulator{}, false, fmt.Errorf("kiln knows no emulator for %s", arch)
	}
	if mounted, err := binfmtMounted(); err != nil {
		return Emulator{}, false, err
	} else if !mounted {
		if err := mountBinfmt(); err != nil {
			return Emulator{}, false, err
		}
	}
	var conf []byte
	var confPath string
	for _, d := range binfmtConfDirs {
		confPath = filepath.Join(d, "qemu-"+q+".conf")
		if conf, err = os.ReadFile(confPath); err == nil {
			break
		}
	}
	if err != nil {
		return Emulator{}, false, fmt.Errorf("no registration for %s in %s (apt-get install qemu-user-static): %w",
			arch, strings.Join(binfmtConfDirs, " or "), err)
	}
	name, line, err := binfmtRegistration(conf)
	if err != nil {
		return Emulator{}, false, fmt.Errorf("%s: %w", confPath, err)
	}
	if text, err := os.ReadFile(filepath.Join(BinfmtDir, name)); err == nil {
		return parseBinfmtEntry(name, string(text)).Emulator, false, nil
	}
	if err := os.WriteFile(filepath.Join(BinfmtDir, "register"), line, 0); err != nil {
		return Emulator{}, false, fmt.Errorf("register %s from %s: %w", name, confPath, err)
	}
	text, err := os.ReadFile(filepath.Join(BinfmtDir, name))
	if err != nil {
		return Emulator{}, true, fmt.Errorf("read back %s: %w", name, err)
	}
	return parseBinfmtEntry(name, string(text)).Emulator, true, nil
}

// RemoveEmulator removes the binfmt_misc entry qemu-NAME of arch; removed is false
// when there was none.
func RemoveEmulator(arch string) (removed bool, err error) {
	q, ok := QemuName(arch)
	if !ok {
		return false, fmt.Errorf("kiln knows no emulator for %s", arch)
	}
	p := filepath.Join(BinfmtDir, "qemu-"+q)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	// Writing -1 to an entry removes it.
	if err := os.WriteFile(p, []byte("-1"), 0); err != nil {
		return false, fmt.Errorf("remove binfmt_misc entry qemu-%s: %w", q, err)
	}
	return true, nil
}

// BinfmtMounted reports whether binfmt_misc is mounted at BinfmtDir.
func BinfmtMounted() (bool, error) { return binfmtMounted() }

// MountBinfmt mounts binfmt_misc at BinfmtDir (as root).
func MountBinfmt() error { return mountBinfmt() }

func binfmtMounted() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(BinfmtDir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("statfs %s: %w", BinfmtDir, err)
	}
	return st.Type == unix.BINFMTFS_MAGIC, nil
}

func mountBinfmt() error {
	if err := unix.Mount("binfmt_misc", BinfmtDir, "binfmt_misc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount binfmt_misc on %s (needs root): %w", BinfmtDir, err)
	}
	return nil
}

// readBinfmtEntries reads every registration, by name.
func readBinfmtEntries() (map[string]string, error) {
	des, err := os.ReadDir(BinfmtDir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", BinfmtDir, err)
	}
	out := map[string]string{}
	for _, de := range des {
		if n := de.Name(); n != "register" && n != "status" {
			data, err := os.ReadFile(filepath.Join(BinfmtDir, n))
			if err != nil {
				continue // removed meanwhile
			}
			out[n] = string(data)
		}
	}
	return out, nil
}

// inUserNamespace reports whether the process runs in a user namespace other than
// the initial one (whose uid_map maps every id to itself).
func inUserNamespace() bool {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(data))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

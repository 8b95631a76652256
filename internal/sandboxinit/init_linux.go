package sandboxinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/userns"
)

// The sandbox init is kiln itself (or kiln-init), started by Run in new namespaces.
// It waits for its config (sent once the parent has put it in the step's cgroup),
// unshares its cgroup and mount namespaces, builds the filesystem, switches to the step's user and execs the command as pid 1 of the
// new pid namespace. It never returns: on failure it reports to the parent over the
// socket and exits with 127 (not found) or 126 (cannot execute, or setup failed).

func Main() {
	if len(os.Args) == 0 || os.Getenv(Env) != "1" {
		return
	}
	if os.Args[0] == ProbeArg0 {
		probeProc()
	}
	if os.Args[0] != Arg0 {
		return
	}
	// Capabilities, the cgroup namespace and the credentials set below belong to
	// the calling thread; the same thread must exec.
	runtime.LockOSThread()
	sock := os.NewFile(FD, "kiln-sandbox")
	code, err := sandboxInit(sock)
	b, _ := json.Marshal(Failure{Msg: err.Error(), Code: code})
	_, _ = sock.Write(b)
	os.Exit(code)
}

// sandboxInit returns only on failure, with the exit code and the reason.
func sandboxInit(sock *os.File) (int, error) {
	var cfg Config
	if err := json.NewDecoder(sock).Decode(&cfg); err != nil {
		return 126, fmt.Errorf("sandbox init: read config: %w", err)
	}
	if err := setupSandbox(&cfg); err != nil {
		return 126, fmt.Errorf("sandbox init: %w", err)
	}
	path, err := lookPath(cfg.Args[0], cfg.Env)
	if err != nil {
		code := 126
		if errors.Is(err, osexec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		return code, err
	}
	// Every descriptor but stdio closes on exec, the socket included: the
	// parent's EOF on it is the sign that the command started.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 126, fmt.Errorf("sandbox init: close descriptors: %w", err)
	}
	if _, err := sock.Write([]byte{Execing}); err != nil {
		return 126, fmt.Errorf("sandbox init: report: %w", err)
	}
	err = syscall.Exec(path, cfg.Args, cfg.Env)
	code := 126
	if errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	return code, fmt.Errorf("exec %q: %w", cfg.Args[0], err)
}

// setupSandbox does everything between the config and the exec.
func setupSandbox(cfg *Config) error {
	// The step's cgroup (the parent has moved us into it) becomes the root of
	// the cgroup namespace: the step cannot see or name anything above it.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("unshare cgroup namespace: %w", err)
	}
	// The mount namespace is made now, not when the init started (it may have
	// been started ahead, Sandboxes): it must copy the mounts made for the step
	// since, its rootfs and the sources of its bind mounts. It is this thread's
	// (locked, the one that execs), as the cgroup namespace is.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	// Mount points are created with exactly the modes asked for.
	unix.Umask(0)
	if err := setupRootfs(cfg); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if cfg.NewNet {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	if err := pivotRoot(cfg.Rootfs); err != nil {
		return err
	}
	// runc creates a missing working directory as root with mode 0755; after
	// pivot_root every path resolves inside the rootfs.
	if err := os.MkdirAll(cfg.Cwd, 0o755); err != nil {
		return fmt.Errorf("create working directory %s: %w", cfg.Cwd, err)
	}
	if err := unix.Chdir(cfg.Cwd); err != nil {
		return fmt.Errorf("chdir to %s: %w", cfg.Cwd, err)
	}
	// The step runs with runc's default umask, 0022, whatever the umask kiln was
	// started with: a caller's 077 must not make the image's files 0600.
	unix.Umask(0o022)
	// Before the capabilities go: raising a hard limit needs CAP_SYS_RESOURCE.
	for _, u := range cfg.Ulimits {
		if err := unix.Setrlimit(u.Resource, &unix.Rlimit{Cur: u.Soft, Max: u.Hard}); err != nil {
			return fmt.Errorf("--ulimit: set resource %d to %d:%d: %w", u.Resource, u.Soft, u.Hard, err)
		}
	}
	// Last before the capabilities go, as runc without no_new_privs: installing a
	// filter then needs CAP_SYS_ADMIN. What runs after it (capset, setresuid,
	// execve) the profile allows.
	if err := loadSeccomp(cfg.Seccomp); err != nil {
		return err
	}
	if err := dropCaps(last); err != nil {
		return err
	}
	return setUser(cfg)
}

// setUser switches to the step's user. The raw syscalls act on this thread only,
// which is the one that execs; leaving root clears the effective and permitted
// capabilities, as for a non-root user in Docker.
func setUser(cfg *Config) error {
	// The primary group is a supplementary group too, as containerd and Docker
	// set it since CVE-2023-25173: dropping it with setgroups must not be a way
	// around a "deny to group" permission.
	groups := []int{int(cfg.GID)}
	for _, g := range cfg.Groups {
		if g != cfg.GID {
			groups = append(groups, int(g))
		}
	}
	for _, g := range groups {
		if err := userns.UnmappedID("gid", uint32(g)); err != nil {
			return err
		}
	}
	if err := userns.UnmappedID("uid", cfg.UID); err != nil {
		return err
	}
	// A single-id user namespace forbids setgroups; a step that wants no group but
	// its own (gid 0, the only one mapped) loses nothing by skipping it.
	if !(len(groups) == 1 && groups[0] == 0 && setgroupsDenied()) {
		if err := unix.Setgroups(groups); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(cfg.GID), uintptr(cfg.GID), uintptr(cfg.GID)); e != 0 {
		return fmt.Errorf("setgid %d: %w", cfg.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(cfg.UID), uintptr(cfg.UID), uintptr(cfg.UID)); e != 0 {
		return fmt.Errorf("setuid %d: %w", cfg.UID, e)
	}
	return nil
}

// lookPath finds argv0 in env's PATH inside the new root, with exec.LookPath's
// rules and messages ("exec: \"foo\": executable file not found in $PATH").
func lookPath(argv0 string, env []string) (string, error) {
	path := ""
	for _, kv := range env {
		if len(kv) > 5 && kv[:5] == "PATH=" {
			path = kv[5:]
		}
	}
	if err := os.Setenv("PATH", path); err != nil {
		return "", err
	}
	p, err := osexec.LookPath(argv0)
	if errors.Is(err, osexec.ErrDot) {
		// A relative PATH entry: Docker runs it, relative to the working directory.
		return p, nil
	}
	return p, err
}

// loopbackUp brings lo up in a new network namespace, as runc does for a step
// without network.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	defer unix.Close(fd)
	req, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, req); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	req.SetUint16(req.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, req); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

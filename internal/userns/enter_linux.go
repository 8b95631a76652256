package userns

import (
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// stateEnv tells a re-executed kiln where it is: "wait" (its maps are being written:
// wait on fd 3, then exec again so that it starts as root of the namespace),
// "user" (in the namespace of an ordinary user: its store is the user's) or
// "nested" (in a namespace nested in a container's, as the container's root).
const stateEnv = "_KILN_USERNS"

const syncFD = 3

// Mode is how Enter found or placed kiln.
type Mode int

const (
	// Host: real root (or root of a container with CAP_SYS_ADMIN); nothing was done.
	Host Mode = iota
	// User: started by an ordinary user; now root of a user namespace mapped to it.
	User
	// Nested: uid 0 of a container without CAP_SYS_ADMIN; now root of a nested namespace.
	Nested
)

// Current reports the mode of this process, as Enter left it.
func Current() Mode {
	switch os.Getenv(stateEnv) {
	case "user":
		return User
	case "nested":
		return Nested
	}
	return Host
}

// Enter must be called early in main, before any goroutine matters. When kiln
// needs a user namespace (not root, or root without CAP_SYS_ADMIN) and is not in
// one it made, it re-executes /proc/self/exe with the same arguments in new user
// and mount namespaces, forwards SIGINT, SIGTERM and SIGHUP, and exits with its
// status: it never returns then, except with an error when the child could not
// start. In the re-executed kiln it makes every mount private and returns nil.
func Enter() error {
	switch os.Getenv(stateEnv) {
	case "wait":
		return awaitMaps()
	case "user", "nested":
		// First thing: the namespace's mounts are copies of the parent's, and
		// none of kiln's may propagate back.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("user namespace: make mounts private: %w", err)
		}
		return nil
	}
	if os.Geteuid() == 0 && hasCapSysAdmin() {
		return nil
	}
	cmd, sync, err := start()
	if err != nil {
		return err
	}
	os.Exit(wait(cmd, sync))
	return nil
}

// start starts the child in its namespaces and returns it with the write end of
// its sync pipe (nil when its maps were written before it ran).
func start() (*osexec.Cmd, *os.File, error) {
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	if uid == 0 {
		// Root of a container without CAP_SYS_ADMIN: keep the container's ids.
		// Writing a map of more than one id needs CAP_SETUID/CAP_SETGID over
		// the container's namespace; without them only uid 0 maps.
		um, gm := ownMap("/proc/self/uid_map"), ownMap("/proc/self/gid_map")
		cmd, err := startMapped("nested", um, gm, true)
		if err == nil {
			return cmd, nil, nil
		}
		single := []IDMap{{0, 0, 1}}
		cmd, err2 := startMapped("nested", single, single, false)
		if err2 != nil {
			return nil, nil, fmt.Errorf("create a user namespace: %w (with the container's ids: %v)%s", err2, err, nestedHint(err2))
		}
		return cmd, nil, nil
	}
	um, gm, helpers := Plan(uid, gid)
	if !helpers {
		// One id each: the kernel lets the parent write that map itself.
		cmd, err := startMapped("user", um, gm, false)
		if err != nil {
			return nil, nil, fmt.Errorf("create a user namespace: %w%s", err, userNSHint(err))
		}
		return cmd, nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := reexec("wait")
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, nil, fmt.Errorf("create a user namespace: %w%s", err, userNSHint(err))
	}
	r.Close()
	pid := strconv.Itoa(cmd.Process.Pid)
	// The two helpers are independent: run side by side they save one process
	// start (~20-40 ms) on every rootless command.
	maps := []struct {
		tool string
		m    []IDMap
	}{{"newuidmap", um}, {"newgidmap", gm}}
	errs := make([]error, len(maps))
	var wg sync.WaitGroup
	for i, h := range maps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := osexec.Command(h.tool, append([]string{pid}, helperArgs(h.m)...)...).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("%s %s: %w: %s (check the user's lines in /etc/subuid and /etc/subgid)", h.tool, Describe(h.m), err, strings.TrimSpace(string(out)))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		w.Close()
		return nil, nil, err
	}
	if _, err := w.Write([]byte{1}); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, fmt.Errorf("user namespace: signal the child: %w", err)
	}
	return cmd, w, nil
}

// Plan returns the maps for a user namespace of the user uid/gid and whether they
// need newuidmap/newgidmap (the user has subordinate ranges and the helpers are
// installed); otherwise the maps are uid and gid alone.
func Plan(uid, gid uint32) (uidMap, gidMap []IDMap, helpers bool) {
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	subu, errU := readSubIDs("/etc/subuid", name, uid)
	subg, errG := readSubIDs("/etc/subgid", name, uid)
	_, errHU := osexec.LookPath("newuidmap")
	_, errHG := osexec.LookPath("newgidmap")
	if errU != nil || errG != nil || len(subu) == 0 || len(subg) == 0 || errHU != nil || errHG != nil {
		return []IDMap{{0, uid, 1}}, []IDMap{{0, gid, 1}}, false
	}
	return UserMap(uid, subu), UserMap(gid, subg), true
}

func readSubIDs(file, name string, id uint32) ([]Range, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ParseSubIDs(f, name, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return r, nil
}

// startMapped starts the child with maps the kernel lets this process write itself.
func startMapped(state string, um, gm []IDMap, setgroups bool) (*osexec.Cmd, error) {
	cmd := reexec(state)
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
	cmd.SysProcAttr.UidMappings = sysMap(um)
	cmd.SysProcAttr.GidMappings = sysMap(gm)
	// A single-id map may only be written once setgroups is denied (user_namespaces(7)).
	cmd.SysProcAttr.GidMappingsEnableSetgroups = setgroups
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

func sysMap(m []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}

func reexec(state string) *osexec.Cmd {
	return &osexec.Cmd{
		Path:        "/proc/self/exe",
		Args:        os.Args,
		Env:         append(os.Environ(), stateEnv+"="+state),
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
}

// awaitMaps runs in the child whose maps newuidmap/newgidmap write. It was exec'd
// before they existed, as an unmapped user, so the kernel gave it no capabilities
// in its namespace; once the parent says the maps are written it execs kiln again,
// now as uid 0 of the namespace, which gets the full set.
func awaitMaps() error {
	sync := os.NewFile(syncFD, "kiln-userns-sync")
	var b [1]byte
	if _, err := io.ReadFull(sync, b[:]); err != nil {
		return fmt.Errorf("user namespace: wait for the id maps: %w", err)
	}
	sync.Close()
	env := os.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, stateEnv+"=") {
			env[i] = stateEnv + "=user"
		}
	}
	if err := unix.Setresgid(0, 0, 0); err != nil {
		return fmt.Errorf("user namespace: setgid 0: %w", err)
	}
	if err := unix.Setresuid(0, 0, 0); err != nil {
		return fmt.Errorf("user namespace: setuid 0: %w", err)
	}
	return syscall.Exec("/proc/self/exe", os.Args, env)
}

// wait forwards signals to the child until it exits and returns its exit status.
func wait(cmd *osexec.Cmd, sync *os.File) int {
	if sync != nil {
		defer sync.Close()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	signal.Stop(sigs)
	var ee *osexec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "kiln: %v\n", err)
	return 1
}

// ownMap is the identity map of the ids this process's namespace maps (the
// container's), or uid 0 alone when it cannot be read.
func ownMap(file string) []IDMap {
	b, err := os.ReadFile(file)
	m, err2 := ParseIDMap(string(b))
	if err != nil || err2 != nil || len(m) == 0 {
		return []IDMap{{0, 0, 1}}
	}
	out := make([]IDMap, len(m))
	for i, e := range m {
		out[i] = IDMap{ContainerID: e.ContainerID, HostID: e.ContainerID, Size: e.Size}
	}
	return out
}

// InNamespace reports whether this process runs in a user namespace other than the
// initial one, whose uid_map maps the whole 32-bit range onto itself.
func InNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	m, err := ParseIDMap(string(b))
	return err != nil || len(m) != 1 || m[0] != IDMap{0, 0, 4294967295}
}

// hasCapSysAdmin reports whether CAP_SYS_ADMIN is in this process's effective set.
func hasCapSysAdmin() bool { return hasCap(unix.CAP_SYS_ADMIN) }

// hasCap reports whether capability c is in this process's effective set.
func hasCap(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<uint(c)) != 0
		}
	}
	return false
}

// nestedHint says what to change when a container's root cannot make a user
// namespace. Without CAP_SETFCAP the kernel (>= 5.12) refuses any map that contains
// the container's uid 0, and root can map no other id without CAP_SETUID, so no
// user namespace kiln can use exists; with CAP_SETFCAP alone it maps uid 0 only,
// and CAP_SETUID and CAP_SETGID let it map every id of the container.
func nestedHint(err error) string {
	if !errors.Is(err, unix.EPERM) || hasCap(unix.CAP_SETFCAP) {
		return userNSHint(err)
	}
	return "; kiln runs as root of a container without CAP_SETFCAP, which the kernel requires to map uid 0 into a user namespace: " +
		"give the container the capabilities SETFCAP, SETUID and SETGID (Docker's and Kubernetes' default set has them; with hostUsers: false they " +
		"hold over the pod's own user namespace only), e.g. capabilities: {drop: [ALL], add: [SETFCAP, SETUID, SETGID]}"
}

// userNSHint says what to change when the kernel refuses a user namespace.
func userNSHint(err error) string {
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EACCES) {
		return ""
	}
	return "; the kernel refused a user namespace: allow them (sysctl user.max_user_namespaces > 0; on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0) or, in a container, give it a seccomp profile that permits unshare(CLONE_NEWUSER) (Docker's and containerd's defaults permit it only with CAP_SYS_ADMIN)"
}

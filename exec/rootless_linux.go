package exec

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/sandboxinit"
	"github.com/kiln-build/kiln/internal/userns"
)

// Inside a user namespace (rootless kiln, or kiln in an unprivileged container) the
// sandbox is built from what the kernel grants the namespace's root: new mount, pid,
// uts, ipc and net namespaces and bind, tmpfs, devpts and mqueue mounts all work;
// device nodes cannot be created (they are bound from the host's /dev instead), a
// fresh procfs is refused where the visible /proc has paths mounted over (a
// container's masked paths; the host's /proc, with its masks, is bound instead),
// and cgroups cannot be created under a hierarchy the namespace does not own.

// stepCgroupFor is newStepCgroup, or no cgroup where kiln cannot create one (in a
// user namespace without write access to the hierarchy) and the step asks for no
// limit. The step's pid namespace still ends every process it leaves: when its
// pid 1 exits the kernel kills the rest.
func stepCgroupFor(lim Limits) (stepCgroup, error) {
	if !userns.InNamespace() || cgroupsWritable() {
		return newStepCgroup(lim)
	}
	if limited(lim) {
		return nil, fmt.Errorf("%w (%s)", ErrNoCgroups, delegationReport(cgroup2Mount(), "/proc/self/cgroup"))
	}
	return noCgroup{}, nil
}

// ErrNoCgroups is the error of Run for a step with limits where kiln cannot create
// cgroups; Run's error adds what kiln found of a delegated cgroup v2 subtree.
var ErrNoCgroups = errors.New("--memory, --cpus and --pids-limit need a cgroup, which kiln in a user namespace cannot create: " +
	"the cgroup hierarchy is not writable from here and kiln does not yet use delegated cgroup v2 subtrees; " +
	"build without these flags (steps then run without limits) or as root")

// cgroup2Mount is where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on a
// unified host, /sys/fs/cgroup/unified on a hybrid one, "" when there is none.
func cgroup2Mount() string {
	for _, m := range []string{unifiedRoot, filepath.Join(unifiedRoot, "unified")} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return m
		}
	}
	return ""
}

// delegationReport says, for the error of a step with limits, what stands between
// kiln and a delegated cgroup v2 subtree: kiln's own cgroup v2 (the "0::" line of
// procCgroup under mount) must be writable by it, as systemd makes it with
// Delegate=yes, and offer the memory and pids controllers, which a hybrid host
// binds to cgroup v1 instead. Delegated subtrees are not used even when all is
// there (see ErrNoCgroups): the report says so.
func delegationReport(mount, procCgroup string) string {
	if mount == "" {
		return "this host has no cgroup v2 hierarchy"
	}
	b, err := os.ReadFile(procCgroup)
	if err != nil {
		return fmt.Sprintf("cannot read kiln's cgroup: %v", err)
	}
	rel := ""
	for _, line := range strings.Split(string(b), "\n") {
		if r, ok := strings.CutPrefix(line, "0::"); ok {
			rel = r
		}
	}
	if rel == "" {
		return "kiln is in no cgroup v2"
	}
	dir := filepath.Join(mount, rel)
	ctrl, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Sprintf("kiln's cgroup v2 %s is not visible here: %v", dir, err)
	}
	have := strings.Fields(string(ctrl))
	var missing []string
	for _, c := range []string{"memory", "pids"} {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		why := ""
		if filepath.Base(mount) == "unified" {
			why = ": this host is hybrid and binds them to cgroup v1; boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2 only"
		}
		return fmt.Sprintf("kiln's cgroup v2 %s lacks the %s controller(s) (it has: %s)%s", dir, strings.Join(missing, ", "), strings.Join(have, " "), why)
	}
	if unix.Access(dir, unix.W_OK) != nil {
		return fmt.Sprintf("kiln's cgroup v2 %s is not delegated to you (not writable); systemd-run --user --scope -p Delegate=yes makes one", dir)
	}
	return fmt.Sprintf("kiln's cgroup v2 %s is delegated to you with memory and pids, but kiln does not use delegated subtrees yet", dir)
}

// limited reports whether lim asks for anything beyond the default pids limit,
// which a build without flags passes.
func limited(lim Limits) bool {
	return lim.MemoryBytes > 0 || lim.CPUs > 0 || (lim.Pids > 0 && lim.Pids != defaultPids)
}

// cgroupsWritable reports whether this process may create cgroups for its steps:
// the v2 root on a unified host, the pids hierarchy (kiln sets a pids limit on every
// step) on a legacy or hybrid one.
func cgroupsWritable() bool {
	dir := filepath.Join(unifiedRoot, "pids")
	if cgroups.Mode() == cgroups.Unified {
		dir = unifiedRoot
	}
	return unix.Access(dir, unix.W_OK) == nil
}

// CgroupsAvailable reports whether RUN steps get a cgroup (and so --memory, --cpus
// and --pids-limit are enforced), for the progress.
func CgroupsAvailable() bool { return !userns.InNamespace() || cgroupsWritable() }

// noCgroup is the stepCgroup of a step that runs without one.
type noCgroup struct{}

func (noCgroup) add(int) error                         { return nil }
func (noCgroup) killAll() error                        { return nil }
func (noCgroup) events() (oomKilled, pidsLimited bool) { return false, false }
func (noCgroup) delete() error                         { return nil }
func (noCgroup) dirs() []string                        { return nil }

// ProcNote explains, for the progress, a /proc that is bound instead of fresh.
const ProcNote = "a fresh /proc cannot be mounted here (EPERM: the kernel allows it only while a /proc " +
	"with nothing mounted over its files is visible, and the container runtime masks some of them), " +
	"so RUN steps see this container's /proc, with its masks, and its processes; " +
	"for a private /proc give the pod procMount: Unmasked (with hostUsers: false) or drop the OCI spec's maskedPaths and readonlyPaths"

// unmappedUser is the error of userns.UnmappedID for the first id of u that kiln's
// user namespace does not map, or nil.
func unmappedUser(u User) error {
	if err := userns.UnmappedID("uid", u.UID); err != nil {
		return err
	}
	for _, g := range append([]uint32{u.GID}, u.AdditionalGIDs...) {
		if err := userns.UnmappedID("gid", g); err != nil {
			return err
		}
	}
	return nil
}

// FreshProc reports whether RUN steps get a procfs of their own. Where
// /proc/self/mountinfo shows a plain read-write proc on /proc with nothing mounted
// under it, the kernel's rule for a new proc in a user namespace (an existing one
// must be fully visible: no files covered, not read-only, no subset=) is met and the
// answer is yes without more ado; otherwise (a container's masked paths, the usual
// case where it matters) it starts kiln in new mount and pid namespaces, as Run
// starts a sandbox, and has it mount one: that probe costs an exec of kiln, ~0.05 s
// of every rootless build where it ran unconditionally. Where a new proc cannot be
// mounted, steps see a bind of kiln's /proc (ProcNote says why).
func FreshProc() bool {
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && procUncovered(string(b)) {
		return true
	}
	cmd := &osexec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{sandboxinit.ProbeArg0},
		Env:  []string{sandboxinit.Env + "=1"},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	return cmd.Run() == nil
}

// procUncovered reports whether mountinfo (the text of /proc/self/mountinfo) has a
// read-write proc mounted on /proc without subset= and no mount below /proc but
// binfmt_misc's (on an empty directory, which the kernel allows).
func procUncovered(mountinfo string) bool {
	found := false
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 3 {
			continue
		}
		point := f[4]
		switch {
		case point == "/proc":
			opts := strings.Split(f[5], ",")
			found = g[0] == "proc" && slices.Contains(opts, "rw") && !strings.Contains(g[2], "subset=")
		case strings.HasPrefix(point, "/proc/") && point != "/proc/sys/fs/binfmt_misc":
			return false
		}
	}
	return found
}

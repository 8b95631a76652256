package main

import (
	"fmt"
	"os"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/userns"
	"github.com/kiln-build/kiln/snapshot"
)

// storeCommands are the commands that touch the store. Run by an ordinary user (or
// by a container's root without CAP_SYS_ADMIN) they run in kiln's own user namespace:
// the store's files belong to the namespace's ids, and only there can kiln mount.
var storeCommands = map[string]bool{"build": true, "prune": true, "du": true, "check": true}

// enterUserNamespace re-executes kiln in its user namespace when the command needs
// one (see userns.Enter); it returns in the namespace, or at once when none is needed.
func enterUserNamespace(args []string) error {
	for _, a := range args {
		if len(a) > 0 && a[0] == '-' {
			continue
		}
		if !storeCommands[a] {
			return nil
		}
		return userns.Enter()
	}
	return nil
}

// noteSandbox says once, in the progress, which sandbox RUN steps get when kiln is
// in a user namespace: what it maps, how layers are stacked, whether /proc is fresh,
// and that limits are not enforced where no cgroup can be made. Whether /proc can be
// fresh takes a probe (a re-exec of kiln, ~0.1 s on a busy machine), which runs
// beside the build; the returned func waits for its note, and must be called before
// the progress closes.
func noteSandbox(info, warn func(string), snaps *snapshot.Snapshotter) (wait func()) {
	if !userns.InNamespace() {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		noteSandboxNow(info, warn, snaps)
	}()
	return func() { <-done }
}

func noteSandboxNow(info, warn func(string), snaps *snapshot.Snapshotter) {
	um, _ := os.ReadFile("/proc/self/uid_map")
	m, err := userns.ParseIDMap(string(um))
	ids := "?"
	if err == nil {
		ids = userns.Describe(m)
	}
	proc := "fresh /proc"
	if !exec.FreshProc() {
		proc = "bound /proc"
		warn(exec.ProcNote)
	}
	info(fmt.Sprintf("sandbox: user namespace (uids %s), new mount/pid/uts/ipc namespaces, %s, snapshots by %s", ids, proc, snaps.Mode()))
	if userns.Size(m) == 1 {
		warn("kiln's user namespace maps only uid and gid 0: a step that needs another id fails; " + userns.AddRangesHint())
	}
	if !exec.CgroupsAvailable() {
		warn("resource limits are not enforced: kiln in a user namespace cannot create cgroups here (--memory, --cpus and --pids-limit fail)")
	}
}

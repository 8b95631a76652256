// Package exec runs one RUN step in a sandbox that kiln builds itself, with no runc
// and no daemon, as safe and as faithful as runc under BuildKit.
//
// Run re-executes /proc/self/exe (or kiln-init, Spec.Init) as the sandbox init
// (MaybeInit, first in main, recognises it) in new pid, uts and ipc namespaces (and
// net for NetworkNone); once the parent has put it in a fresh cgroup
// (kiln/step-<random>, v2 when the host is unified, else every v1 hierarchy, with
// memory, CPU, pids and Docker's device rules) and sent its config, the init
// unshares its cgroup and mount namespaces, mounts /proc
// (with Docker's masked and read-only paths), a minimal /dev (null, zero, full,
// random, urandom, tty, devpts, shm, mqueue), a read-only /sys with the step's
// cgroups read-only at /sys/fs/cgroup (cgroupfs_linux.go), BuildKit's /etc/hosts
// and a copy of the host's /etc/resolv.conf, read-only, and the step's bind and
// tmpfs mounts,
// pivots into the rootfs, installs Docker's default seccomp profile
// (seccomp_linux.go), keeps Docker's default capabilities, switches to the
// resolved user and execs the command as pid 1, so the kernel kills whatever the
// step leaves running when it exits. Mount points the image lacked are created
// before the step and removed after it when still empty, so they never reach the
// layer; only /dev, /proc and /sys stay, empty, as under runc and BuildKit. After
// the step every process left in the cgroup is killed and the cgroup
// removed, on every path including cancellation; the step holds its cgroup's lease
// (an flock on its dirs) until then, so RemoveStaleCgroups, which a build calls when it
// starts, removes exactly the cgroups that killed kiln processes left. Isolate puts
// kiln itself in a private mount namespace so its overlay mounts die with it.
//
// Sandboxes does the same, with each step's init and cgroup made while the step
// before it runs (the init waits for its config, and copies the mounts only then),
// and the cgroup removed after the step in the background; Close waits for both.
//
// Rootless (kiln in its own user namespace, see internal/userns): the same sandbox,
// built from what the namespace's root may do (rootless_linux.go). Device nodes are
// bound from the host's /dev instead of created; a fresh /proc is refused where the
// visible /proc has paths mounted over it (a container's masked paths), and the
// host's /proc is bound recursively instead, masks kept (FreshProc probes it, ProcNote
// says why and what to change); sysfs is bound read-only when the network namespace is
// the host's; setgroups is skipped in a single-id namespace, and a USER whose uid or
// gid the namespace does not map fails before the step starts, saying how to add
// subordinate ids. No cgroup can be created where the hierarchy is not writable:
// steps without limits then run without one (their pid namespace still ends every
// process they leave), and steps with limits fail with ErrNoCgroups.
//
// A step whose Spec.Arch the host cannot run natively runs under the binfmt_misc
// emulator registered for it (binfmt.go): Run first checks that one is registered,
// enabled and has the F flag, and fails with an EmulatorError that says how to
// register one (InstallEmulator, kiln binfmt install) otherwise. Run never registers
// one itself. In a user namespace the check is left to the kernel (mounting
// binfmt_misc there would make an empty instance).
//
// Not supported: AppArmor/SELinux profiles, seccomp on a host architecture
// without a syscall table (other than amd64 and arm64, steps there run without
// a filter), cgroup limits in a user namespace (delegated cgroup v2 subtrees are
// not used), and RUN --mount types other than
// bind and tmpfs (the solver turns cache, secret and ssh mounts into binds).
package exec

package exec

import (
	"context"
	"errors"
	"io"
	"syscall"
)

// NetworkMode is the network a RUN step sees.
type NetworkMode string

const (
	NetworkHost NetworkMode = "host" // the default: share the host's network namespace
	NetworkNone NetworkMode = "none" // a new network namespace with only lo up
)

// Mount is an extra mount set up inside the sandbox before the command runs.
type Mount struct {
	Type     string // "bind" or "tmpfs"
	Source   string // host path for bind; ignored for tmpfs
	Target   string // absolute path inside the rootfs
	ReadOnly bool
	Options  []string // e.g. "size=64m" for tmpfs
}

// Limits are the cgroup limits of one step. Zero means unlimited (Pids: 0 means 4096).
type Limits struct {
	MemoryBytes int64
	CPUs        float64
	Pids        int64
}

// Spec is one RUN step to execute.
type Spec struct {
	Rootfs   string   // the mounted merged rootfs (an Active snapshot's Root)
	Args     []string // argv; Args[0] is looked up in the Env's PATH inside the rootfs
	Env      []string // KEY=VALUE; PATH gets the default when missing
	Cwd      string   // absolute path inside the rootfs; created if missing
	User     string   // as written in USER: name, uid, name:group, uid:gid; "" is root
	Hostname string   // "" means a generated one that is not the host's
	Network  NetworkMode
	Mounts   []Mount
	Limits   Limits
	Stdout   io.Writer
	Stderr   io.Writer
}

// ExitError is returned by Run when the command did not exit 0.
type ExitError struct {
	Code        int            // exit code, or 128+signal
	Signal      syscall.Signal // non-zero when killed by a signal
	OOMKilled   bool           // the cgroup's memory limit killed it
	MemoryLimit int64
	PidsLimited bool // the pids limit was hit at least once
}

func (e *ExitError) Error() string { return "exit status" }

// Run executes spec in a new sandbox (mount, pid, uts, ipc, cgroup namespaces, and net
// for NetworkNone) and waits for it. When it returns no process, mount or cgroup of the
// step is left. Cancelling ctx kills the step.
func Run(ctx context.Context, spec Spec) error {
	return errors.New("exec: Run not implemented")
}

// MaybeInit must be the first call in main. In a process started by Run as the
// sandbox's init, it sets the sandbox up and execs the command, never returning.
// Otherwise it returns at once.
func MaybeInit() {}

// User is a resolved identity.
type User struct {
	UID, GID       uint32
	AdditionalGIDs []uint32
	Home           string
}

// ResolveUser resolves a USER value against rootfs's /etc/passwd and /etc/group
// (read through a path-safe join), as Docker does: a numeric uid not in passwd gets
// gid = uid... (see the Dockerfile reference), HOME "/" when unknown.
func ResolveUser(rootfs, user string) (User, error) {
	return User{}, errors.New("exec: ResolveUser not implemented")
}

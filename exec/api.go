package exec

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/kiln-build/kiln/internal/sandboxinit"
)

// NetworkMode is the network a RUN step sees.
type NetworkMode string

const (
	NetworkHost NetworkMode = "host" // the default: share the host's network namespace
	NetworkNone NetworkMode = "none" // a new network namespace with only lo up
)

// Mount is an extra mount set up inside the sandbox before the command runs: Type
// "bind" (Source a host path) or "tmpfs", at Target (absolute, inside the rootfs),
// with Options such as "size=64m" for a tmpfs.
type Mount = sandboxinit.Mount

// Limits are the cgroup limits of one step. Zero means unlimited (Pids: 0 means 4096).
type Limits struct {
	MemoryBytes int64
	CPUs        float64
	Pids        int64
}

// DefaultHostname is a step's hostname, BuildKit's: fixed, so that a RUN that records
// it (hostname > f) makes the same file in every build, and never the host's.
const DefaultHostname = "buildkitsandbox"

// Host is one /etc/hosts entry: a name and its address.
type Host = sandboxinit.Host

// Ulimit is one resource limit (a setrlimit resource) with its soft and hard values.
type Ulimit = sandboxinit.Ulimit

// Spec is one RUN step to execute.
type Spec struct {
	Rootfs   string   // the mounted merged rootfs (an Active snapshot's Root)
	Args     []string // argv; Args[0] is looked up in the Env's PATH inside the rootfs
	Env      []string // KEY=VALUE; PATH gets the default when missing
	Cwd      string   // absolute path inside the rootfs; created if missing
	User     string   // as written in USER: name, uid, name:group, uid:gid; "" is root
	Hostname string   // "" means DefaultHostname
	Network  NetworkMode
	Mounts   []Mount
	Limits   Limits
	// ExtraHosts are --add-host entries, added to the step's /etc/hosts.
	ExtraHosts []Host
	// ShmSize is the size of /dev/shm in bytes (0: 64 MiB, as Docker's default).
	ShmSize int64
	// Ulimits are --ulimit resource limits, set before the command starts.
	Ulimits []Ulimit
	// Arch is the architecture of the rootfs's binaries (GOARCH spelling, "" the
	// host's). One the host cannot run natively needs a binfmt_misc emulator
	// (FindEmulator): without one Run fails with an *EmulatorError before starting.
	Arch string
	// Init is the sandbox init to start: a kiln-init built with this kiln (see
	// FindInit). "" starts kiln itself (/proc/self/exe), which works as well but
	// pays kiln's whole package initialisation, ~10 ms, on every step.
	Init   string
	Stdout io.Writer
	Stderr io.Writer
}

// ExitError is returned by Run when the command did not exit 0.
// When the command could not be started at all (executable not found: Code 127, not
// executable: 126), Run returns an error whose message says why and which wraps an
// *ExitError with that code, so errors.As finds it.
type ExitError struct {
	Code        int            // exit code, or 128+signal
	Signal      syscall.Signal // non-zero when killed by a signal
	OOMKilled   bool           // the cgroup's memory limit killed a process of the step
	MemoryLimit int64          // the limit in bytes, when OOMKilled
	PidsLimited bool           // the pids limit was hit at least once
}

// Run executes spec in a new sandbox (mount, pid, uts, ipc, cgroup namespaces, and net
// for NetworkNone) and waits for it. When it returns no process, mount or cgroup of the
// step is left. Cancelling ctx kills the step.
//
// The command runs as pid 1 of its pid namespace, so when it exits the kernel kills
// every process it left behind. Stdin is /dev/null.
func Run(ctx context.Context, spec Spec) error { return run(ctx, spec) }

// MaybeInit must be the first call in main. In a process started by Run as the
// sandbox's init, it sets the sandbox up and execs the command, never returning.
// Otherwise it returns at once.
func MaybeInit() { sandboxinit.Main() }

// Isolate puts the kiln process in a private mount namespace, so that every mount it
// makes (the overlay of each step) disappears with it even on kill -9. Call it at the
// start of a command that mounts, as root. When kiln is built with cgo, a constructor
// made the namespace, with "/" recursively private, before the Go runtime started
// (preisolate_cgo_linux.go), and Isolate returns nil at once. Otherwise the first call
// re-executes /proc/self/exe with the same arguments and environment in a new mount
// namespace, forwards SIGINT, SIGTERM and SIGHUP to it, and exits with its exit code:
// it never returns, except with an error when the child could not be started. In the
// re-executed child, Isolate makes "/" recursively private (so no mount propagates
// back to the host) and returns nil.
//
// A re-exec is needed there because unshare(CLONE_NEWNS) only moves the calling
// thread of a multi-threaded Go process.
func Isolate() error { return isolate() }

// RemoveStaleCgroups removes the step cgroups that kiln processes killed with SIGKILL
// left behind (empty dirs under /kiln in each hierarchy). A build calls it when it
// starts; it never touches the cgroup of a live step, in this process or another.
func RemoveStaleCgroups() { removeStaleCgroups() }

// User is a resolved identity.
type User struct {
	UID, GID       uint32
	AdditionalGIDs []uint32
	Home           string
}

// ResolveUser resolves a USER value against rootfs's /etc/passwd and /etc/group
// (read through securejoin, so symlinks resolve inside rootfs), with the rules of
// runc's and BuildKit's user lookup (github.com/moby/sys/user GetExecUser): a name
// must be in passwd; a numeric uid not in passwd is used as is with gid 0; a group
// part overrides the gid (a name must be in group, a number need not be); without a
// group part the user's supplementary groups are the groups of /etc/group that list
// its name. Home is the passwd entry's, "/" when unknown. Missing files are fine for
// numeric ids.
func ResolveUser(rootfs, user string) (User, error) { return resolveUser(rootfs, user) }

// FileOwner is the owner of what a COPY --chown copies or a WORKDIR creates.
type FileOwner struct{ UID, GID int }

// ErrNotInImage is the error of ResolveFileOwner for a user or group name that the
// image's /etc/passwd or /etc/group lacks.
var ErrNotInImage = errors.New("no matching entries in the image's passwd or group file")

// ErrNoIDFile is the error of ResolveFileOwner, beside ErrNotInImage, for a name
// looked up in an /etc/passwd or /etc/group the image does not have.
var ErrNoIDFile = errors.New("the image has no /etc/passwd or /etc/group to look names up in")

// ResolveFileOwner resolves a "user[:group]" (names or numbers) against rootfs as
// BuildKit's file operations do (COPY --chown, the directory WORKDIR creates),
// which differs from ResolveUser (a RUN's USER): a numeric user is the gid too
// ("--chown=1000" is 1000:1000 whatever /etc/passwd says, as Docker documents); a
// user name gives its uid and primary gid; a group part overrides the gid. "root"
// is 0 even without /etc/passwd. For a name the image lacks, the error wraps
// ErrNotInImage and the owner returned is BuildKit's, which does not fail: 0 for
// the user (and gid), the user's gid for the group.
func ResolveFileOwner(rootfs, spec string) (FileOwner, error) {
	return resolveFileOwner(rootfs, spec)
}

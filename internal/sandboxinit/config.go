// Package sandboxinit is the init of a RUN step's sandbox: the code that runs in the
// new namespaces between the clone and the exec of the step's command. It mounts
// the step's filesystem (a fresh /proc with Docker's masks, /dev, a read-only /sys
// and cgroupfs, /etc/hosts and resolv.conf, the step's mounts), pivots into it,
// installs the seccomp filter the parent compiled, drops the capabilities, switches
// to the step's user and execs.
//
// It is a package of its own, apart from package exec that starts it, so that the
// init binary (cmd/kiln-init) links only this: every package a binary links runs its
// initialisation at each start, and exec's dependencies (cgroup libraries with their
// protobuf descriptors, the seccomp profile and syscall tables) cost a RUN step
// ~12 ms of CPU before its init could read its config. The parent side (package
// exec) and this one share nothing but the wire types below.
package sandboxinit

// How the parent recognises its sandbox init: argv[0] and an environment variable,
// both needed so that neither a user's argv nor an inherited variable triggers it.
const (
	Arg0 = "kiln-sandbox-init"
	Env  = "_KILN_SANDBOX_INIT"
	// FD is the socket to the parent, the first of the init's ExtraFiles.
	FD = 3
	// Execing is the byte the init sends just before it execs the command.
	Execing = '!'
	// ProbeArg0 is argv[0] of the child that probes whether a fresh procfs mounts
	// (exec.FreshProc), started with Env set as the init is.
	ProbeArg0 = "kiln-sandbox-probe"
)

// Config is what the parent sends the sandbox init, as JSON over the socket.
type Config struct {
	Rootfs   string
	Args     []string
	Env      []string // final: PATH and HOME filled in
	Cwd      string
	UID      uint32
	GID      uint32
	Groups   []uint32
	Hostname string
	NewNet   bool
	Mounts   []Mount
	Hosts    []Host
	ShmSize  int64
	Ulimits  []Ulimit
	// Seccomp is the step's seccomp program, struct sock_filter entries
	// (little-endian), empty where the host architecture has no syscall table.
	Seccomp []byte

	sysBound bool // the init's own: /sys is a bind of the host's (mountSys)
}

// Failure is what the init sends back when it cannot exec the command.
type Failure struct {
	Msg  string
	Code int
}

// Mount is an extra mount set up inside the sandbox before the command runs.
type Mount struct {
	Type     string // "bind" or "tmpfs"
	Source   string // host path for bind; ignored for tmpfs
	Target   string // absolute path inside the rootfs
	ReadOnly bool
	Options  []string // e.g. "size=64m" for tmpfs
}

// Host is one /etc/hosts entry: a name and its address.
type Host struct {
	Name string
	IP   string
}

// Ulimit is one resource limit (a setrlimit resource) with its soft and hard values.
type Ulimit struct {
	Resource   int
	Soft, Hard uint64
}

package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/internal/sandboxinit"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func run(ctx context.Context, spec Spec) error { return runIn(ctx, spec, nil) }

// runIn is Run, with the step's sandbox taken from pool when it has one ready for
// the step, and its cgroup removed by the pool; with a nil pool, both done here.
func runIn(ctx context.Context, spec Spec, pool *Sandboxes) (retErr error) {
	if NeedsEmulation(spec.Arch) {
		if _, err := FindEmulator(spec.Arch); err != nil {
			return err
		}
	}
	cfg, err := prepareConfig(spec, pool.seccompProgram)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if err := createRuntimeDirs(cfg.Rootfs); err != nil {
		return err
	}
	st, err := createStubs(cfg.Rootfs, mountTargets(spec))
	defer func() {
		if err := st.remove(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("clean mount points: %w", err))
		}
	}()
	if err != nil {
		return err
	}

	key := keyOf(spec)
	sb := pool.take(ctx, key)
	if sb == nil {
		if err := ctx.Err(); err != nil {
			return err // cancelled while the sandbox started ahead was starting
		}
		if sb, err = startSandbox(key); err != nil {
			return err
		}
	}
	defer func() {
		if err := pool.retire(sb); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	cmd, cg := sb.cmd, sb.cg
	sb.stdout.set(spec.Stdout)
	sb.stderr.set(spec.Stderr)
	// Killing the init, pid 1 of the namespace, makes the kernel kill the rest.
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()

	started, failure, startErr := startInit(sb.sock, cfg)
	if startErr != nil {
		_ = cmd.Process.Kill()
	}
	waitErr := sb.wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run %s: %w", cfg.Args[0], context.Cause(ctx))
	}
	if startErr != nil {
		return startErr
	}
	if failure != nil && NeedsEmulation(spec.Arch) && strings.Contains(failure.Msg, syscall.ENOEXEC.Error()) {
		// FindEmulator could not look (a user namespace without binfmt_misc
		// mounted) or the entry went away since: the kernel found no interpreter.
		return &EmulatorError{Arch: spec.Arch, Reason: fmt.Sprintf("the kernel could not run %s (%s): no binfmt_misc interpreter took it", cfg.Args[0], syscall.ENOEXEC)}
	}
	if failure != nil {
		return fmt.Errorf("%s: %w", failure.Msg, &ExitError{Code: failure.Code})
	}
	if !started && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// Whatever ran as the init was not one: it exited 0 without ever
		// starting the command, which must not pass for the step's success.
		name := key.init
		if p, err := os.Readlink(key.init); err == nil { // the file behind /proc/self/...
			name = p
		}
		return fmt.Errorf("sandbox init %s exited without starting %s: it is not kiln's init (reinstall kiln and kiln-init together): %w", name, cfg.Args[0], &ExitError{Code: 126})
	}
	return exitError(cmd, waitErr, cg, spec.Limits)
}

// startInit sends the init, already in its cgroup, its config (which is its signal
// to go on), then reads its report until EOF: sandboxinit.Execing, sent just before the
// exec, and then nothing (the socket is close-on-exec in the init) means the command
// started; a JSON sandboxinit.Failure after it or alone means it did not. started is false
// when the init sent nothing at all: it died first, or was not kiln's init.
func startInit(sock *os.File, cfg sandboxinit.Config) (started bool, f *sandboxinit.Failure, err error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return false, nil, fmt.Errorf("encode sandbox config: %w", err)
	}
	// An init that is gone (killed, or not kiln's init at all) resets the socket:
	// then it sent nothing, and its exit status says the rest.
	gone := func(err error) bool { return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) }
	if _, err := sock.Write(b); err != nil && !gone(err) {
		return false, nil, fmt.Errorf("send sandbox config: %w", err)
	}
	report, err := io.ReadAll(sock)
	if err != nil && !gone(err) {
		return false, nil, fmt.Errorf("read sandbox init report: %w", err)
	}
	report, execing := bytes.CutPrefix(report, []byte{sandboxinit.Execing})
	if len(report) == 0 {
		return execing, nil, nil
	}
	f = &sandboxinit.Failure{}
	if err := json.Unmarshal(report, f); err != nil {
		return execing, &sandboxinit.Failure{Msg: "sandbox init: " + string(report), Code: 126}, nil
	}
	return execing, f, nil
}

// exitError turns the command's end into nil or an *ExitError with the cgroup's
// account of it.
func exitError(cmd *osexec.Cmd, waitErr error, cg stepCgroup, lim Limits) error {
	if cmd.ProcessState == nil {
		return fmt.Errorf("wait for sandbox: %w", waitErr)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return fmt.Errorf("wait for sandbox: %w", waitErr)
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		if waitErr != nil { // copying the output failed
			return fmt.Errorf("copy output: %w", waitErr)
		}
		return nil
	}
	e := &ExitError{Code: ws.ExitStatus()}
	if ws.Signaled() {
		e.Signal = ws.Signal()
		e.Code = 128 + int(e.Signal)
	}
	e.OOMKilled, e.PidsLimited = cg.events()
	if e.OOMKilled {
		e.MemoryLimit = lim.MemoryBytes
	}
	return e
}

// prepareConfig checks spec and resolves what can be resolved before the sandbox
// starts: the user, the environment, the hostname; seccompProgram gives the
// step's seccomp program.
func prepareConfig(spec Spec, seccompProgram func() ([]byte, error)) (sandboxinit.Config, error) {
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return sandboxinit.Config{}, errors.New("run: no command")
	}
	if spec.Rootfs == "" {
		return sandboxinit.Config{}, errors.New("run: no rootfs")
	}
	rootfs, err := filepath.Abs(spec.Rootfs)
	if err != nil {
		return sandboxinit.Config{}, fmt.Errorf("run: %w", err)
	}
	switch spec.Network {
	case "", NetworkHost, NetworkNone:
	default:
		return sandboxinit.Config{}, fmt.Errorf("run: unknown network mode %q", spec.Network)
	}
	u, err := ResolveUser(rootfs, spec.User)
	if err != nil {
		return sandboxinit.Config{}, fmt.Errorf("run: %w", err)
	}
	// In kiln's user namespace a user it does not map cannot run the step: say so
	// before starting a sandbox, here, where $USER still names who needs the ranges
	// (the init checks again, with a bare environment).
	if err := unmappedUser(u); err != nil {
		return sandboxinit.Config{}, fmt.Errorf("run as %q: %w", spec.User, err)
	}
	for _, m := range spec.Mounts {
		if err := checkMount(m); err != nil {
			return sandboxinit.Config{}, fmt.Errorf("run: %w", err)
		}
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return sandboxinit.Config{}, fmt.Errorf("run: working directory %q is not absolute", cwd)
	}
	host := spec.Hostname
	if host == "" {
		host = DefaultHostname
	}
	filter, err := seccompProgram()
	if err != nil {
		return sandboxinit.Config{}, fmt.Errorf("run: %w", err)
	}
	return sandboxinit.Config{
		Seccomp:  filter,
		Rootfs:   rootfs,
		Args:     spec.Args,
		Env:      stepEnv(spec.Env, u),
		Cwd:      path.Clean(cwd),
		UID:      u.UID,
		GID:      u.GID,
		Groups:   u.AdditionalGIDs,
		Hostname: host,
		NewNet:   spec.Network == NetworkNone,
		Mounts:   spec.Mounts,
		Hosts:    spec.ExtraHosts,
		ShmSize:  spec.ShmSize,
		Ulimits:  spec.Ulimits,
	}, nil
}

// stepEnv is env with PATH and HOME added when missing, as runc does under
// BuildKit (which sets neither HOSTNAME nor anything else).
func stepEnv(env []string, u User) []string {
	out := make([]string, 0, len(env)+2)
	hasPath, hasHome := false, false
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH":
			hasPath = true
		case "HOME":
			hasHome = true
		}
		out = append(out, kv)
	}
	if !hasPath {
		out = append(out, "PATH="+defaultPath)
	}
	if !hasHome {
		out = append(out, "HOME="+u.Home)
	}
	return out
}

func checkMount(m Mount) error {
	if !path.IsAbs(m.Target) {
		return fmt.Errorf("mount target %q is not absolute", m.Target)
	}
	switch m.Type {
	case "bind":
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("bind mount source: %w", err)
		}
	case "tmpfs":
	default:
		return fmt.Errorf("mount %s: unsupported type %q", m.Target, m.Type)
	}
	return sandboxinit.CheckOptions(m)
}

// mountTargets lists every path the sandbox mounts over, for createStubs.
func mountTargets(spec Spec) []stubTarget {
	t := []stubTarget{
		{path: "/proc", dir: true},
		{path: "/dev", dir: true},
		{path: "/sys", dir: true},
		{path: "/etc/hosts"},
		{path: "/etc/resolv.conf"},
	}
	for _, m := range spec.Mounts {
		dir := true
		if m.Type == "bind" {
			if fi, err := os.Stat(m.Source); err == nil && !fi.IsDir() {
				dir = false
			}
		}
		t = append(t, stubTarget{path: m.Target, dir: dir})
	}
	return t
}

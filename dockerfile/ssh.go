package dockerfile

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/solver"
)

// ParseSSH parses a --ssh value as buildx does: ID=SOCKET, or a bare ID (usually
// "default") meaning $SSH_AUTH_SOCK. kiln forwards agent sockets only; a private key
// file must be loaded into an agent first.
func ParseSSH(value string) (string, string, error) {
	id, p, ok := strings.Cut(value, "=")
	if id == "" {
		return "", "", fmt.Errorf("invalid --ssh %q: want ID=SOCKET or ID", value)
	}
	if !ok || p == "" {
		p = os.Getenv("SSH_AUTH_SOCK")
		if p == "" {
			return "", "", fmt.Errorf("--ssh %s: SSH_AUTH_SOCK is not set; give the agent socket as --ssh %s=PATH", id, id)
		}
	}
	if strings.Contains(p, ",") {
		return "", "", fmt.Errorf("--ssh %s: kiln forwards one ssh-agent socket per id, not key files", id)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", "", fmt.Errorf("--ssh %s: %w", id, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return "", "", fmt.Errorf("--ssh %s: %s is not a socket; kiln forwards ssh-agent sockets only (load the key into an agent with ssh-add)", id, p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", err
	}
	return id, abs, nil
}

// sshMount resolves one type=ssh mount (the n-th of its RUN) into a socket in the
// step's private dir that relays to the agent given with --ssh: like BuildKit's
// proxy socket, it carries the mount's uid, gid and mode (default 0600, root) and
// never exposes the host socket's path or permissions. It returns the target.
func (b *build) sshMount(ctx context.Context, sc *stepCtx, m *instructions.Mount, n int, rm *runMounts) (string, error) {
	if m.Source != "" {
		return "", sc.errorf(b.opts.Filename, "RUN --mount=type=ssh does not support source")
	}
	id := m.CacheID
	if id == "" {
		id = "default"
	}
	target := m.Target
	if target == "" {
		target = fmt.Sprintf("/run/buildkit/ssh_agent.%d", n)
	} else if !path.IsAbs(target) {
		target = path.Join(sc.workdir(), target)
	}
	mode := os.FileMode(0o600)
	if m.Mode != nil {
		mode = fileModeFromUnix(uint32(*m.Mode))
	}
	rm.ops = append(rm.ops, solver.MountOp{Type: "ssh", Target: target, ID: id, Required: m.Required,
		UID: optString(m.UID, 10), GID: optString(m.GID, 10), Mode: optString(m.Mode, 8)})

	agent, ok := b.opts.SSH[id]
	rm.ops[len(rm.ops)-1].Given = ok
	if !ok {
		if m.Required {
			return "", sc.errorf(b.opts.Filename, "RUN --mount=type=ssh,id=%s: no ssh agent %q was given; pass it with --ssh %s=$SSH_AUTH_SOCK", id, id, id)
		}
		return target, nil
	}
	dir, err := rm.private()
	if err != nil {
		return "", err
	}
	sock := filepath.Join(dir, fmt.Sprintf("ssh_agent.%d", n))
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return "", fmt.Errorf("ssh agent proxy: %w", err)
	}
	if err := os.Chown(sock, optID(m.UID), optID(m.GID)); err == nil {
		err = os.Chmod(sock, mode)
	}
	if err != nil {
		ln.Close()
		return "", fmt.Errorf("ssh agent proxy: %w", err)
	}
	p := &agentProxy{ln: ln, agent: agent, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve(ctx)
	rm.releases = append(rm.releases, p.close)
	rm.list = append(rm.list, exec.Mount{Type: "bind", Source: sock, Target: target})
	return target, nil
}

// agentProxy relays connections on a step's socket to an ssh agent.
type agentProxy struct {
	ln    net.Listener
	agent string
	wg    sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func (p *agentProxy) serve(ctx context.Context) {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			var d net.Dialer
			up, err := d.DialContext(ctx, "unix", p.agent)
			if err != nil {
				return
			}
			if !p.track(up) {
				up.Close()
				return
			}
			defer p.untrack(up)
			done := make(chan struct{}, 2)
			relay := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
				done <- struct{}{}
			}
			go relay(up, c)
			go relay(c, up)
			<-done
			<-done
		}()
	}
}

func (p *agentProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *agentProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// close stops the proxy once the step is over: no connection outlives the step.
func (p *agentProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

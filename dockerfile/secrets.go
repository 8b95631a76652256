package dockerfile

import (
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/solver"
)

// maxSecretSize is BuildKit's limit on one secret (secretsprovider.MaxSecretSize).
const maxSecretSize = 500 * 1024

// SecretSource is where a --secret's value comes from: a file, or an environment
// variable of the kiln process. It is read when a step mounts it and never stored.
type SecretSource struct {
	File string
	Env  string
}

// ParseSecret parses a --secret value as buildx does:
// id=ID[,type=file|env][,src=PATH|source=PATH][,env=VAR]. With type=env, src names the
// variable. With neither src nor env, the variable named ID is used when it is set,
// else the file named ID (BuildKit's secretsprovider.NewStore). A file must exist
// and be at most 500KiB.
func ParseSecret(value string) (string, SecretSource, error) {
	var id, typ string
	var s SecretSource
	for _, field := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return "", s, fmt.Errorf("invalid --secret %q: field %q must be a key=value pair", value, field)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "type":
			if v != "file" && v != "env" {
				return "", s, fmt.Errorf("invalid --secret %q: unsupported secret type %q (use file or env)", value, v)
			}
			typ = v
		case "id":
			id = v
		case "src", "source":
			s.File = v
		case "env":
			s.Env = v
		default:
			return "", s, fmt.Errorf("invalid --secret %q: unexpected key %q", value, k)
		}
	}
	if id == "" {
		return "", s, fmt.Errorf("invalid --secret %q: missing id=", value)
	}
	if typ == "env" && s.Env == "" {
		s.Env, s.File = s.File, ""
	}
	if s.Env == "" && s.File == "" {
		if _, ok := os.LookupEnv(id); ok {
			s.Env = id
		} else {
			s.File = id
		}
	}
	if s.File != "" {
		fi, err := os.Stat(s.File)
		if err != nil {
			return "", s, fmt.Errorf("secret %s: %w", id, err)
		}
		if fi.Size() > maxSecretSize {
			return "", s, fmt.Errorf("secret %s is too big: the maximum is 500KiB", id)
		}
	}
	return id, s, nil
}

// read returns the secret's value.
func (s SecretSource) read(id string) ([]byte, error) {
	if s.Env != "" {
		return []byte(os.Getenv(s.Env)), nil
	}
	data, err := os.ReadFile(s.File)
	if err != nil {
		return nil, fmt.Errorf("read secret %s: %w", id, err)
	}
	if len(data) > maxSecretSize {
		return nil, fmt.Errorf("secret %s is too big: the maximum is 500KiB", id)
	}
	return data, nil
}

// privateDir is a directory for one step's secret files and agent sockets: a 0700
// directory on /dev/shm (or the temp dir) with a private tmpfs over it, so a secret
// never reaches a disk, never lies inside kiln's root, and vanishes with kiln's
// mount namespace even when kiln is killed.
type privateDir struct {
	dir     string
	mounted bool
}

func newPrivateDir() (*privateDir, error) {
	base := "/dev/shm"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "kiln-secrets-")
	if err != nil {
		return nil, fmt.Errorf("secret dir: %w", err)
	}
	p := &privateDir{dir: dir}
	// Without the mount (not root, or no tmpfs allowed) the 0700 directory on
	// /dev/shm still keeps it off disk and away from other users.
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=16m"); err == nil {
		p.mounted = true
	}
	return p, nil
}

// release removes every file in the directory and the directory itself.
func (p *privateDir) release() {
	if p.mounted {
		_ = unix.Unmount(p.dir, unix.MNT_DETACH)
	}
	_ = os.RemoveAll(p.dir)
}

// secretMount resolves one type=secret mount: a read-only bind of a private file
// holding the value, an environment variable for the step, or both. A secret
// not given is an error when required; otherwise the mount is skipped (and an env
// variable is set empty, as BuildKit does). Only the id, target and env name enter
// the cache key, never the value.
func (b *build) secretMount(sc *stepCtx, m *instructions.Mount, rm *runMounts) error {
	id := m.CacheID
	if m.Source != "" {
		id = m.Source
	}
	if id == "" {
		if m.Target == "" {
			return sc.errorf(b.opts.Filename, "RUN --mount=type=secret needs an id or a target")
		}
		id = path.Base(m.Target)
	}
	target := m.Target
	if m.Env == nil && target == "" {
		target = "/run/secrets/" + path.Base(id)
	}
	if target != "" && !path.IsAbs(target) {
		target = path.Join(sc.workdir(), target)
	}
	envName := ""
	if m.Env != nil {
		envName = *m.Env
		if envName == "" {
			return sc.errorf(b.opts.Filename, "RUN --mount=type=secret,id=%s: env= needs a variable name", id)
		}
	}
	rm.ops = append(rm.ops, solver.MountOp{Type: "secret", Target: target, ID: id, Env: envName, Required: m.Required,
		UID: optString(m.UID, 10), GID: optString(m.GID, 10), Mode: optString(m.Mode, 8)})

	src, ok := b.opts.Secrets[id]
	rm.ops[len(rm.ops)-1].Given = ok
	if !ok {
		if m.Required {
			return sc.errorf(b.opts.Filename, "RUN --mount=type=secret,id=%s: secret %q is required but was not given; pass it with --secret id=%s,src=FILE or --secret id=%s,env=VAR", id, id, id, id)
		}
		if envName != "" {
			rm.env = append(rm.env, envName+"=")
		}
		return nil
	}
	value, err := src.read(id)
	if err != nil {
		return sc.errorf(b.opts.Filename, "RUN --mount=type=secret,id=%s: %w", id, err)
	}
	if envName != "" {
		rm.env = append(rm.env, envName+"="+string(value))
	}
	if target == "" {
		return nil
	}
	dir, err := rm.private()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o400)
	if m.Mode != nil {
		mode = fileModeFromUnix(uint32(*m.Mode))
	}
	f, err := os.CreateTemp(dir, "secret-")
	if err != nil {
		return fmt.Errorf("secret %s: %w", id, err)
	}
	_, err = f.Write(value)
	if err == nil {
		err = f.Chown(optID(m.UID), optID(m.GID))
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("secret %s: %w", id, err)
	}
	rm.list = append(rm.list, exec.Mount{Type: "bind", Source: f.Name(), Target: target, ReadOnly: true})
	return nil
}

// private returns the step's private directory, creating it on first use.
func (rm *runMounts) private() (string, error) {
	if rm.priv == nil {
		p, err := newPrivateDir()
		if err != nil {
			return "", err
		}
		rm.priv = p
		rm.releases = append(rm.releases, p.release)
	}
	return rm.priv.dir, nil
}

func optID(v *uint64) int {
	if v == nil {
		return 0
	}
	return int(*v)
}

func optNum(v *uint64, base int) string {
	if v == nil {
		return "-"
	}
	if base == 8 {
		return fmt.Sprintf("%o", *v)
	}
	return fmt.Sprint(*v)
}

// optString renders an optional number option of a mount as the key keeps it.
func optString(v *uint64, base int) string {
	if v == nil {
		return ""
	}
	return optNum(v, base)
}

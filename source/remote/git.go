package remote

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"

	"github.com/kiln-build/kiln/internal/rootpath"
	"github.com/kiln-build/kiln/source"
)

// Git sources: ADD of a git repository and git --build-context values, with the git binary:
// the URL is parsed by BuildKit's dfgitutil (remote, "#ref:subdir" fragment, query
// options), the ref is resolved to a commit with `git ls-remote` (no download, so a
// cache hit costs one round trip), and on a miss the commit alone is fetched
// (--depth=1) into a temp dir and checked out. As the Dockerfile reference says, .git
// is removed unless --keep-git-dir, files are 0644 or 0755 (executable) and
// directories 0755; mtimes are the checkout time (BuildKit's default "checkout"
// policy). The cache key is the commit, the subdir and keep-git-dir.
//
// The host's git configuration and credentials (ssh agent, credential helpers) apply;
// kiln has no --ssh forwarding of its own. Submodules are fetched unless the URL says
// submodules=false.

// GitRepo is a git source resolved to a commit. Release removes its checkout.
type GitRepo struct {
	ref    *dfgitutil.GitRef
	commit string
	// fetch is what `git fetch` asks for: the remote ref name that resolved to commit,
	// or the commit itself when the source named one.
	fetch string
	keep  bool
	dir   string // the work tree, once fetched
	// tmp makes the work tree's dir, in the store's tmp/ (a crash leaves nothing
	// behind that the next start does not remove).
	tmp source.TempDirFunc
}

// Key names the checkout's content for a cache key: the commit, the subdir and
// keep-git-dir.
func (g *GitRepo) Key() string {
	return source.DigestOf("git", g.commit, g.ref.SubDir, fmt.Sprint(g.keep))
}

// Commit is the commit the ref resolved to.
func (g *GitRepo) Commit() string { return g.commit }

// Release removes the checkout, if any.
func (g *GitRepo) Release() {
	if g.dir != "" {
		os.RemoveAll(g.dir)
	}
}

// ResolveGit parses src as a git URL and resolves it (see ResolveGitRef).
func ResolveGit(ctx context.Context, src, checksum string, keep *bool, tmp source.TempDirFunc) (*GitRepo, error) {
	ref, isGit, err := dfgitutil.ParseGitRef(src)
	if err != nil || !isGit {
		return nil, fmt.Errorf("invalid git source %s: %v", src, err)
	}
	return ResolveGitRef(ctx, ref, checksum, keep, tmp)
}

// ResolveGitRef applies --keep-git-dir and --checksum (which must agree with the URL's
// own options, as in BuildKit) and resolves the ref to a commit.
// The caller releases the result. tmp makes the scratch dir of a fetch.
func ResolveGitRef(ctx context.Context, ref *dfgitutil.GitRef, checksum string, keep *bool, tmp source.TempDirFunc) (*GitRepo, error) {
	if keep != nil && ref.KeepGitDir != nil && *keep != *ref.KeepGitDir {
		return nil, fmt.Errorf("inconsistent keep-git-dir configuration")
	}
	if ref.KeepGitDir != nil {
		keep = ref.KeepGitDir
	}
	if ref.MTime == "commit" {
		return nil, fmt.Errorf("git source option mtime=commit is not supported by kiln yet")
	}
	if checksum != "" && ref.Checksum != "" && checksum != ref.Checksum {
		return nil, fmt.Errorf("checksum mismatch %q != %q", checksum, ref.Checksum)
	}
	if ref.Checksum != "" {
		checksum = ref.Checksum
	}
	g := &GitRepo{ref: ref, keep: keep != nil && *keep, tmp: tmp}
	name := ref.Ref
	if name == "" {
		name = "HEAD"
	}
	out, err := git(ctx, "", "ls-remote", "--", ref.Remote)
	if err != nil {
		return nil, err
	}
	g.commit, g.fetch = matchRemoteRef(out, name)
	if g.commit == "" {
		switch {
		case isCommitID(name) && (len(name) == 40 || len(name) == 64):
			g.commit, g.fetch = name, name
		case isCommitID(name):
			// An abbreviated commit: only a full fetch can expand it.
			if err := g.fetchAll(ctx); err != nil {
				g.Release()
				return nil, err
			}
		case checksum != "" && ref.Ref == "":
			g.commit, g.fetch = checksum, checksum
		default:
			return nil, fmt.Errorf("git ref %q not found in %s", name, ref.Remote)
		}
	}
	if checksum != "" && !strings.HasPrefix(g.commit, checksum) {
		g.Release()
		return nil, fmt.Errorf("expected checksum to match %s, got %s (commit of %s)", checksum, g.commit, name)
	}
	return g, nil
}

// matchRemoteRef finds name in `git ls-remote` output as `git fetch` would: the full
// ref name, then refs/NAME, refs/tags/NAME, refs/heads/NAME. An annotated tag
// resolves to the commit it points at (its "^{}" line).
func matchRemoteRef(lsRemote, name string) (commit, ref string) {
	refs := map[string]string{}
	for _, line := range strings.Split(lsRemote, "\n") {
		sha, r, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok {
			refs[r] = sha
		}
	}
	candidates := []string{name}
	if !strings.HasPrefix(name, "refs/") && name != "HEAD" {
		candidates = append(candidates, "refs/"+name, "refs/tags/"+name, "refs/heads/"+name)
	}
	for _, c := range candidates {
		if sha, ok := refs[c+"^{}"]; ok {
			return sha, c
		}
		if sha, ok := refs[c]; ok {
			return sha, c
		}
	}
	return "", ""
}

func isCommitID(s string) bool {
	if len(s) < 4 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// initRepo creates the temp repository with the remote as origin.
func (g *GitRepo) initRepo(ctx context.Context) error {
	dir, err := g.tmp("kiln-git-")
	if err != nil {
		return err
	}
	g.dir = dir
	if _, err := git(ctx, dir, "init", "-q"); err != nil {
		return err
	}
	_, err = git(ctx, dir, "remote", "add", "origin", g.ref.Remote)
	return err
}

// fetchAll fetches every branch and tag to expand an abbreviated commit.
func (g *GitRepo) fetchAll(ctx context.Context) error {
	if err := g.initRepo(ctx); err != nil {
		return err
	}
	if _, err := git(ctx, g.dir, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return err
	}
	out, err := git(ctx, g.dir, "rev-parse", "--verify", "--quiet", g.ref.Ref+"^{commit}")
	if err != nil {
		return fmt.Errorf("git ref %q not found in %s", g.ref.Ref, g.ref.Remote)
	}
	g.commit = strings.TrimSpace(out)
	return nil
}

// Checkout fetches the commit (unless fetchAll did), checks it out and returns the
// directory to copy: the work tree or its subdir, resolved inside it.
func (g *GitRepo) Checkout(ctx context.Context) (string, error) {
	if g.dir == "" {
		if err := g.initRepo(ctx); err != nil {
			return "", err
		}
		spec := g.fetch
		if strings.HasPrefix(spec, "refs/") {
			dst := spec
			if strings.HasPrefix(spec, "refs/heads/") {
				dst = "refs/remotes/origin/" + strings.TrimPrefix(spec, "refs/heads/")
			}
			spec = "+" + spec + ":" + dst
		}
		if _, err := git(ctx, g.dir, "fetch", "-q", "--depth=1", "--no-tags", "origin", spec); err != nil {
			return "", err
		}
	}
	if _, err := git(ctx, g.dir, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", g.commit); err != nil {
		return "", fmt.Errorf("checkout %s: %w (the ref may have moved since it was resolved; retry)", g.commit, err)
	}
	if _, err := os.Stat(filepath.Join(g.dir, ".gitmodules")); err == nil && (g.ref.Submodules == nil || *g.ref.Submodules) {
		if _, err := git(ctx, g.dir, "submodule", "update", "--init", "--recursive", "--depth=1"); err != nil {
			return "", err
		}
	}
	if !g.keep {
		if err := os.RemoveAll(filepath.Join(g.dir, ".git")); err != nil {
			return "", err
		}
	}
	if err := normaliseModes(g.dir); err != nil {
		return "", err
	}
	if g.ref.SubDir == "" {
		return g.dir, nil
	}
	root, err := rootpath.Resolve(g.dir, g.ref.SubDir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("subdir %q is not a directory in %s at %s", g.ref.SubDir, g.ref.Remote, g.commit)
	}
	return root, nil
}

// normaliseModes gives the work tree the modes the Dockerfile reference promises
// whatever the umask: 0644 files, 0755 executables and directories. .git is left as
// git made it.
func normaliseModes(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" && p != dir {
			return filepath.SkipDir
		}
		switch {
		case d.IsDir():
			return os.Chmod(p, 0o755)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			mode := fs.FileMode(0o644)
			if fi.Mode()&0o100 != 0 {
				mode = 0o755
			}
			return os.Chmod(p, mode)
		}
		return nil
	})
}

// git runs the git binary in dir and returns its stdout. It never prompts (a build
// has no terminal to answer on).
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := osexec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

package testenv

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestUser is an ordinary user made for one test, with subordinate ids.
type TestUser struct {
	Name     string
	UID, GID int
	Home     string // a temp dir owned by the user
}

// UserOption changes the user NewTestUser makes.
type UserOption func(*userOptions)

type userOptions struct {
	noSubIDs bool
}

// WithoutSubIDs makes the user without /etc/subuid and /etc/subgid ranges, as on a
// machine where nobody added them: rootless kiln then maps the user alone.
func WithoutSubIDs() UserOption { return func(o *userOptions) { o.noSubIDs = true } }

// NewTestUser creates a user with 65536 subordinate uids and gids (useradd, usermod
// --add-subuids/--add-subgids; none with WithoutSubIDs) and a home under a temp dir;
// the user, its ranges and its files are removed when the test ends, even on
// failure. It needs root.
func NewTestUser(t testing.TB, opts ...UserOption) TestUser {
	t.Helper()
	RequireRoot(t)
	var o userOptions
	for _, opt := range opts {
		opt(&o)
	}
	for _, tool := range []string{"useradd", "usermod", "userdel", "setpriv", "newuidmap"} {
		if _, err := osexec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not installed (Debian: passwd, util-linux, uidmap)", tool)
		}
	}
	// Not t.TempDir: its parent is private to root, and the user must reach its home.
	base, err := os.MkdirTemp("", "kiln-testuser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("kilnt%d", os.Getpid()%100000)
	home := filepath.Join(base, "home")
	run := func(args ...string) {
		t.Helper()
		if out, err := osexec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("useradd", "--create-home", "--home-dir", home, "--shell", "/bin/sh", "--user-group", name)
	t.Cleanup(func() {
		// userdel drops the user's /etc/subuid and /etc/subgid lines too.
		_ = osexec.Command("userdel", "--remove", "--force", name).Run()
		_ = os.RemoveAll(home)
	})
	if o.noSubIDs {
		// useradd gives a new user ranges itself when /etc/login.defs says so
		// (SUB_UID_COUNT); take them away again.
		if subIDLines(name) {
			run("usermod", "--del-subuids", "0-4294967294", "--del-subgids", "0-4294967294", name)
		}
		if subIDLines(name) {
			t.Fatalf("user %s still has lines in /etc/subuid or /etc/subgid", name)
		}
	} else {
		// A range per test process, far from the ones real users get from 100000 on.
		start := 300000 + (os.Getpid()%1000)*65536
		ids := fmt.Sprintf("%d-%d", start, start+65535)
		run("usermod", "--add-subuids", ids, "--add-subgids", ids, name)
	}
	var out []byte
	out, err = osexec.Command("id", "-u", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	out, err = osexec.Command("id", "-g", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return TestUser{Name: name, UID: uid, GID: gid, Home: home}
}

// Command is name with args run as u (setpriv, with u's groups), with a minimal
// environment naming u's home, as a login would.
func (u TestUser) Command(name string, args ...string) *osexec.Cmd {
	a := append([]string{"--reuid", strconv.Itoa(u.UID), "--regid", strconv.Itoa(u.GID), "--init-groups", "--", name}, args...)
	cmd := osexec.Command("setpriv", a...)
	cmd.Env = []string{"HOME=" + u.Home, "USER=" + u.Name, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	cmd.Dir = u.Home
	return cmd
}

// subIDLines reports whether /etc/subuid or /etc/subgid has a line for name.
func subIDLines(name string) bool {
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, name+":") {
				return true
			}
		}
	}
	return false
}

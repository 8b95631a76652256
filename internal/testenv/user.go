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

// NewTestUser creates a user with 65536 subordinate uids and gids (useradd, usermod
// --add-subuids/--add-subgids) and a home under a temp dir; the user, its ranges and
// its files are removed when the test ends, even on failure. It needs root.
func NewTestUser(t testing.TB) TestUser {
	t.Helper()
	RequireRoot(t)
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
	// A range per test process, far from the ones real users get from 100000 on.
	start := 300000 + (os.Getpid()%1000)*65536
	ids := fmt.Sprintf("%d-%d", start, start+65535)
	run("usermod", "--add-subuids", ids, "--add-subgids", ids, name)
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

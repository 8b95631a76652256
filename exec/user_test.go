package exec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestResolveUser(t *testing.T) {
	full := t.TempDir()
	writeFile(t, full, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n# comment\n\napp:x:1000:1000::/home/app:/bin/sh\n1234:x:5000:5000::/home/numeric:/bin/sh\nsecond:x:1000:77::/home/second:/bin/sh\n")
	writeFile(t, full, "etc/group", "root:x:0:root\napp:x:1000:\nextra:x:2000:app,other\nwheel:x:10:root\n4000:x:4001:\n")
	empty := t.TempDir()

	tests := []struct {
		rootfs, user string
		want         User
		err          string
	}{
		{full, "", User{UID: 0, GID: 0, AdditionalGIDs: []uint32{0, 10}, Home: "/root"}, ""},
		{full, "root", User{UID: 0, GID: 0, AdditionalGIDs: []uint32{0, 10}, Home: "/root"}, ""},
		{full, "app", User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{2000}, Home: "/home/app"}, ""},
		// A number is a uid, never a name; the first entry with that uid wins.
		{full, "1000", User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{2000}, Home: "/home/app"}, ""},
		{full, "1234", User{UID: 1234, GID: 0, Home: "/"}, ""},
		{full, "4242", User{UID: 4242, GID: 0, Home: "/"}, ""},
		{full, "4242:4343", User{UID: 4242, GID: 4343, Home: "/"}, ""},
		{full, "app:extra", User{UID: 1000, GID: 2000, Home: "/home/app"}, ""},
		{full, "app:2000", User{UID: 1000, GID: 2000, Home: "/home/app"}, ""},
		{full, "app:4000", User{UID: 1000, GID: 4000, Home: "/home/app"}, ""},
		{full, "4242:wheel", User{UID: 4242, GID: 10, Home: "/"}, ""},
		{full, "ghost", User{}, "unable to find user ghost: no matching entries in passwd file"},
		{full, "app:ghosts", User{}, "unable to find group ghosts: no matching entries in group file"},
		{full, "-1", User{}, "uids and gids must be in range"},
		{full, "99999999999", User{}, "uids and gids must be in range"},
		{empty, "", User{Home: "/"}, ""},
		{empty, "12:34", User{UID: 12, GID: 34, Home: "/"}, ""},
		{empty, "12", User{UID: 12, Home: "/"}, ""},
		{empty, "app", User{}, "unable to find user app"},
	}
	for _, tt := range tests {
		name := filepath.Base(tt.rootfs) + "/" + tt.user
		t.Run(name, func(t *testing.T) {
			got, err := ResolveUser(tt.rootfs, tt.user)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveUserStaysInRootfs(t *testing.T) {
	rootfs := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "passwd", "evil:x:0:0::/:/bin/sh\n")
	if err := os.Symlink(outside, filepath.Join(rootfs, "etc")); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveUser(rootfs, "evil"); err == nil {
		t.Error("an absolute symlink led the passwd lookup out of the rootfs")
	}
	// The same link read as the image means it: /etc/passwd inside the rootfs.
	writeFile(t, rootfs, outside+"/passwd", "inside:x:7:8::/in:/bin/sh\n")
	if u, err := ResolveUser(rootfs, "inside"); err != nil || u.UID != 7 || u.GID != 8 {
		t.Errorf("in-rootfs absolute link: %+v %v", u, err)
	}
}

func writeFile(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolveFileOwner(t *testing.T) {
	full := t.TempDir()
	writeFile(t, full, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nother:x:1001:50::/home/other:/bin/sh\n")
	writeFile(t, full, "etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:\n")
	empty := t.TempDir()

	tests := []struct {
		rootfs, spec string
		want         FileOwner
		missing      bool // the error wraps ErrNotInImage and want is BuildKit's fallback
		noFile       bool // it wraps ErrNoIDFile too: the name was looked up in a file the image lacks
		err          string
	}{
		{rootfs: full, spec: "app", want: FileOwner{1000, 1000}},
		{rootfs: full, spec: "other", want: FileOwner{1001, 50}},
		// A number is the uid and the gid, whatever passwd says about it.
		{rootfs: full, spec: "4242", want: FileOwner{4242, 4242}},
		{rootfs: full, spec: "1001", want: FileOwner{1001, 1001}},
		{rootfs: full, spec: "4242:7", want: FileOwner{4242, 7}},
		{rootfs: full, spec: "app:staff", want: FileOwner{1000, 50}},
		{rootfs: full, spec: "root", want: FileOwner{0, 0}},
		{rootfs: empty, spec: "root:root", want: FileOwner{0, 0}},
		{rootfs: empty, spec: "12", want: FileOwner{12, 12}},
		{rootfs: full, spec: "ghost", want: FileOwner{0, 0}, missing: true, err: "unable to find user ghost"},
		{rootfs: full, spec: "app:ghosts", want: FileOwner{1000, 1000}, missing: true, err: "unable to find group ghosts"},
		{rootfs: empty, spec: "app", want: FileOwner{0, 0}, missing: true, noFile: true, err: "unable to find user app"},
		{rootfs: empty, spec: "0:staff", want: FileOwner{0, 0}, missing: true, noFile: true, err: "unable to find group staff"},
		{rootfs: full, spec: "-1", err: "uids and gids must be in range"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.rootfs)+"/"+tt.spec, func(t *testing.T) {
			got, err := ResolveFileOwner(tt.rootfs, tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || errors.Is(err, ErrNotInImage) != tt.missing || errors.Is(err, ErrNoIDFile) != tt.noFile {
					t.Fatalf("error = %v, want %q (not in image: %v, no file: %v)", err, tt.err, tt.missing, tt.noFile)
				}
				if !tt.missing {
					return
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

package sbom

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testenv"
)

// The tree is untrusted: an image's absolute symlinks name the image's files, and
// following them naively reads the host's. These trees try that with the files the
// scanner reads by name; the host (a Debian machine running the tests) has a real
// /etc/os-release, /var/lib/dpkg/status and /etc/passwd, so a leak shows as its
// packages or OS appearing in the document.
func TestSymlinksResolveInsideTheTree(t *testing.T) {
	for _, tc := range []struct {
		name    string
		build   func(t *testing.T, root string)
		wantOS  string   // "" for no OS package
		wantPkg []string // every package but the root and the OS
	}{{
		name: "absolute links to the same path are loops inside the tree",
		build: func(t *testing.T, root string) {
			symlink(t, "/etc/os-release", filepath.Join(root, "etc/os-release"))
			symlink(t, "/var/lib/dpkg/status", filepath.Join(root, "var/lib/dpkg/status"))
		},
	}, {
		name: "absolute links name the tree's own files",
		build: func(t *testing.T, root string) {
			writeTree(t, root, map[string]string{
				"etc/passwd":            "Package: inside-pkg\nVersion: 1.0\nArchitecture: amd64\n",
				"etc/inside-os-release": "ID=inside\nVERSION_ID=7\n",
			})
			symlink(t, "/etc/passwd", filepath.Join(root, "var/lib/dpkg/status"))
			symlink(t, "/../../../../../../etc/inside-os-release", filepath.Join(root, "etc/os-release"))
		},
		wantOS:  "inside",
		wantPkg: []string{"inside-pkg"},
	}, {
		name: "relative links climbing out stop at the tree's root",
		build: func(t *testing.T, root string) {
			writeTree(t, root, map[string]string{
				"status": "Package: root-pkg\nVersion: 2.0\nArchitecture: all\n",
			})
			symlink(t, strings.Repeat("../", 20)+"status", filepath.Join(root, "var/lib/dpkg/status"))
			symlink(t, strings.Repeat("../", 20)+"etc/os-release", filepath.Join(root, "usr/lib/os-release"))
			symlink(t, "../usr/lib/os-release", filepath.Join(root, "etc/os-release"))
		},
		wantPkg: []string{"root-pkg"},
	}, {
		name: "a directory linked to the host's root is not walked",
		build: func(t *testing.T, root string) {
			symlink(t, "/", filepath.Join(root, "app/node_modules/evil"))
			symlink(t, "/usr/lib/python3", filepath.Join(root, "usr/lib/python3"))
			symlink(t, "/usr/bin", filepath.Join(root, "usr/local/bin"))
			symlink(t, "/var/lib/dpkg", filepath.Join(root, "var/lib/dpkg/status.d"))
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.build(t, root)
			_, doc := scan(t, root, Options{Name: "hostile", Created: testCreated})
			var gotOS string
			var got []string
			for _, p := range doc.Packages {
				switch p.PackageSPDXIdentifier {
				case rootID:
				case osID:
					gotOS = p.PackageName
				default:
					got = append(got, p.PackageName)
				}
			}
			if gotOS != tc.wantOS || strings.Join(got, " ") != strings.Join(tc.wantPkg, " ") {
				t.Fatalf("OS %q packages %q; want OS %q packages %q", gotOS, got, tc.wantOS, tc.wantPkg)
			}
		})
	}
}

// Fifos and devices where the scanner reads files by name, and as walked files: none
// may be opened for reading (a fifo with no writer blocks open and read forever;
// /dev/zero never ends; opening a tape rewinds it).
func TestSpecialFilesDoNotHang(t *testing.T) {
	testenv.RequireRoot(t) // mknod
	root := t.TempDir()
	fifos := []string{
		"var/lib/dpkg/status",
		"var/lib/dpkg/status.d/fifo",
		"usr/lib/os-release",
		"app/node_modules/x/package.json",
		"app/package-lock.json",
		"usr/lib/python3/dist-packages/x-1.dist-info/METADATA",
		"usr/share/doc/inside-pkg/copyright",
	}
	for _, f := range fifos {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	// A zero device (char 1:5) under names that are read, one of them executable.
	for _, f := range []string{"var/lib/dpkg/status.d/zero", "usr/bin/zero", "etc/os-release"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mknod(p, syscall.S_IFCHR|0o777, 1<<8|5); err != nil {
			t.Fatalf("mknod %s: %v", p, err)
		}
	}
	writeTree(t, root, map[string]string{"var/lib/dpkg/status.d/ok": "Package: inside-pkg\nVersion: 1\n"})

	// Scan in a goroutine so that a hang fails the test instead of stalling it; the
	// document is then read back on the test's goroutine.
	done := make(chan error, 1)
	go func() {
		_, err := Scan(context.Background(), root, Options{Name: "special", Created: testCreated})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Scan hung on a fifo or device")
	}
	_, doc := scan(t, root, Options{Name: "special", Created: testCreated})
	if got := packageList(doc); got != "special@ inside-pkg@1" {
		t.Fatalf("packages: %s", got)
	}
}

// A 1 GiB sparse file under every name the scanner reads must not be read whole: the
// allocations of the whole scan stay far below its size.
func TestHugeFilesAreNotReadWhole(t *testing.T) {
	root := t.TempDir()
	const size = 1 << 30
	huge := []struct {
		name   string
		header string
		mode   os.FileMode
	}{
		{"var/lib/dpkg/status", "Package: huge\nVersion: 1\n\n", 0o644},
		{"var/lib/dpkg/status.d/huge", "Package: huge2\nVersion: 1\n\n", 0o644},
		{"etc/os-release", "ID=huge\n", 0o644},
		{"app/node_modules/huge/package.json", `{"name":"huge","version":"1.0.0"}`, 0o644},
		{"app/package-lock.json", `{"lockfileVersion":3,"packages":{}}`, 0o644},
		{"usr/lib/python3/dist-packages/huge-1.0.dist-info/METADATA", "Name: huge-py\nVersion: 1.0\n\n", 0o644},
		{"usr/bin/huge-elf", "\x7fELF\x02\x01\x01", 0o755},
		{"usr/bin/huge-zeros", "", 0o755},
	}
	for _, h := range huge {
		p := filepath.Join(root, h.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, h.mode)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(h.header); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Scan(ctx, root, Options{Name: "tree of huge files", Created: testCreated})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Fatalf("the scan allocated %d MiB for a tree of 1 GiB files", alloc>>20)
	}
	// Only the METADATA header is read from a prefix; every other huge file is skipped.
	if s := string(b); !strings.Contains(s, `"huge-py"`) || strings.Contains(s, `"name":"huge"`) || strings.Contains(s, `"huge2"`) {
		t.Fatalf("document: %s", b)
	}
}

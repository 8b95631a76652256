package testenv

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxEnvPath is the PATH of the busybox image, as in /work/shared/bench.
const BusyboxEnvPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BusyboxPath is the host's static busybox binary.
func BusyboxPath() (string, error) {
	// Where Debian's busybox-static installs it (/bin is a symlink to /usr/bin on merged-/usr).
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("busybox not found in /bin or /usr/bin (apt-get install busybox-static)")
}

// entry is one file of the busybox rootfs.
type entry struct {
	name     string // relative, no trailing slash
	typ      byte   // tar.TypeDir, TypeReg, TypeSymlink
	mode     int64
	uid, gid int
	data     []byte // TypeReg
	target   string // TypeSymlink
}

const (
	passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n"
	group  = "root:x:0:\nnobody:x:65534:\napp:x:1000:\n"
)

// busyboxEntries is the rootfs of /work/shared/bench/setup-anchors.sh, sorted by name:
// busybox and a symlink per applet in bin, passwd/group with root, nobody and app
// (1000), the usual empty directories, /tmp 1777 and /home/app owned by app.
func busyboxEntries() ([]entry, error) {
	bb, err := BusyboxPath()
	if err != nil {
		return nil, err
	}
	return busyboxEntriesOf(bb)
}

// busyboxEntriesOf is busyboxEntries with the busybox binary at bin (of any
// architecture); the applet links are those of the host's busybox, the same Debian
// package built for another architecture.
func busyboxEntriesOf(bin string) ([]entry, error) {
	bb, err := BusyboxPath()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bb, err)
	}
	es := []entry{
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, data: data},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", typ: tar.TypeReg, mode: 0o644, data: []byte(group)},
		{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
		{name: "home/app", typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
	}
	for _, d := range []string{"bin", "etc", "root", "proc", "dev", "sys", "usr", "usr/bin", "usr/sbin", "sbin", "var", "home"} {
		es = append(es, entry{name: d, typ: tar.TypeDir, mode: 0o755})
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		es = append(es, entry{name: "bin/" + a, typ: tar.TypeSymlink, mode: 0o777, target: "busybox"})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return es, nil
}

// MakeBusyboxRootfs writes the busybox rootfs into dir (which may exist). Ownership
// (home/app is 1000:1000) is only set when running as root.
func MakeBusyboxRootfs(dir string) error {
	es, err := busyboxEntries()
	if err != nil {
		return err
	}
	root := os.Geteuid() == 0
	for _, e := range es {
		p, err := securejoin.SecureJoin(dir, e.name)
		if err != nil {
			return err
		}
		switch e.typ {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.WriteFile(p, e.data, os.FileMode(e.mode)); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(e.target, p); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			continue
		}
		// Chmod after create: the umask must not eat the sticky /tmp or the exec bits.
		if err := os.Chmod(p, os.FileMode(e.mode&0o777)|modeExtra(e.mode)); err != nil {
			return err
		}
		if root {
			if err := os.Lchown(p, e.uid, e.gid); err != nil {
				return err
			}
		}
	}
	return nil
}

func modeExtra(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

// busyboxTar is the rootfs as a deterministic tar (mtime 0, sorted, numeric owners).
func busyboxTar(es []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{
			Typeflag: e.typ, Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.target, Size: int64(len(e.data)), ModTime: time.Unix(0, 0),
			Format: tar.FormatPAX,
		}
		if e.typ == tar.TypeDir {
			h.Name = path.Clean(e.name) + "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// NewBusyboxImage is the busybox rootfs as a one-layer OCI image for linux/GOARCH
// (gzip layer, Env PATH, Cmd ["sh"], created 1970-01-01), the same digest every time.
func NewBusyboxImage() (v1.Image, error) {
	es, err := busyboxEntries()
	if err != nil {
		return nil, err
	}
	return newBusyboxImage(es, runtime.GOARCH)
}

// newBusyboxImage is the image of the rootfs es for linux/arch.
func newBusyboxImage(es []entry, arch string) (v1.Image, error) {
	tb, err := busyboxTar(es)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tb)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	epoch := v1.Time{Time: time.Unix(0, 0).UTC()}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		// Hide tarball's Descriptor(): its empty (non-nil) annotations map makes
		// Manifest() differ from the serialised manifest, which validate rejects.
		Layer:   struct{ v1.Layer }{layer},
		History: v1.History{Created: epoch, CreatedBy: "kiln testenv: busybox-static rootfs"},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Created = epoch
	cf.Config.Env = []string{BusyboxEnvPath}
	cf.Config.Cmd = []string{"sh"}
	return mutate.ConfigFile(img, cf)
}

// WriteBusyboxOCILayout writes the busybox image as an OCI layout in dir, tagged
// "latest" (org.opencontainers.image.ref.name), so a demo can build FROM it offline.
func WriteBusyboxOCILayout(dir string) error {
	img, err := NewBusyboxImage()
	if err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "latest",
	})); err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	return nil
}

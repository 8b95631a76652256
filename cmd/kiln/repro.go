package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/userns"
	"github.com/kiln-build/kiln/layers"
)

// runReproCheck is --repro-check: the build made twice from nothing, in two fresh
// roots that differ where a builder's result must not (the umask kiln runs with,
// --jobs), and the two images compared. It says "reproducible" with the digest, or
// names the first thing that differs: the config field, or the layer and the file
// and what of it. It writes no output: it is a check.
func runReproCheck(ctx context.Context, o buildOptions, contextDir string, stdout, stderr io.Writer, stdin io.Reader) error {
	if len(o.outputs) > 0 || o.push || o.load {
		return fmt.Errorf("--repro-check builds twice and writes nothing: drop the outputs (-o, --push, --load)")
	}
	if o.file == "-" {
		return fmt.Errorf("--repro-check reads the Dockerfile twice: give it with -f FILE, not on stdin")
	}
	if plats, err := o.targetPlatforms(); err != nil {
		return err
	} else if len(plats) > 1 {
		return fmt.Errorf("--repro-check compares one image: check each platform with its own --platform")
	}
	args, err := parseBuildArgs(o.buildArgs)
	if err != nil {
		return err
	}
	if err := resolveSourceDateEpoch(args, contextDir); err != nil {
		return err
	}
	if sourceDateEpoch(args) == nil {
		return fmt.Errorf("--repro-check needs SOURCE_DATE_EPOCH (a build arg or in the environment): without it every build stamps its own time, by design")
	}
	// Isolate re-executes kiln in its own mount namespace: before anything is made
	// here, and once for both builds.
	if userns.Current() == userns.Host {
		if err := exec.Isolate(); err != nil {
			return fmt.Errorf("enter a private mount namespace: %w", err)
		}
	}
	work, err := os.MkdirTemp(filepath.Dir(filepath.Clean(o.root)), ".kiln-repro-")
	if err != nil {
		return fmt.Errorf("--repro-check: %w", err)
	}
	defer os.RemoveAll(work)

	var images [2]v1.Image
	for i := range images {
		run := o
		run.repro, run.isolated = false, true
		run.root = filepath.Join(work, fmt.Sprintf("root%d", i+1))
		run.outputs = []string{"type=oci,dest=" + filepath.Join(work, fmt.Sprintf("image%d.tar", i+1))}
		run.iidFile, run.metadataFile = "", ""
		run.noCache = true
		if i == 1 {
			// The second build: another umask for kiln itself, all steps at once.
			old := syscall.Umask(0o077)
			run.jobs = max(2, runtime.NumCPU())
			err = runBuild(ctx, run, contextDir, stdout, stderr, stdin)
			syscall.Umask(old)
		} else {
			run.jobs = 1
			err = runBuild(ctx, run, contextDir, stdout, stderr, stdin)
		}
		if err != nil {
			return fmt.Errorf("--repro-check build %d of 2: %w", i+1, err)
		}
		if images[i], err = openOCIArchive(filepath.Join(work, fmt.Sprintf("image%d.tar", i+1)), filepath.Join(work, fmt.Sprintf("layout%d", i+1))); err != nil {
			return err
		}
	}
	d1, err := images[0].Digest()
	if err != nil {
		return err
	}
	d2, err := images[1].Digest()
	if err != nil {
		return err
	}
	if d1 == d2 {
		fmt.Fprintf(stdout, "reproducible: two builds from nothing gave %s\n", d1)
		return nil
	}
	diff, err := firstDifference(images[0], images[1])
	if err != nil {
		return err
	}
	return &exitCodeError{code: 1, err: fmt.Errorf("not reproducible: %s and %s differ: %s", d1, d2, diff)}
}

// openOCIArchive unpacks kiln's own OCI archive into dir and opens its one image.
func openOCIArchive(archive, dir string) (v1.Image, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// kiln wrote this archive: plain files and dirs of an OCI layout.
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	if err := layers.Unpack(context.Background(), f, dir, layers.UnpackOptions{}); err != nil {
		return nil, fmt.Errorf("unpack %s: %w", archive, err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s holds %d images, want 1", archive, len(m.Manifests))
	}
	return idx.Image(m.Manifests[0].Digest)
}

// firstDifference names the first thing two images differ in: a config field, the
// layer count, or the first layer that differs and the first file in it.
func firstDifference(a, b v1.Image) (string, error) {
	ca, err := a.RawConfigFile()
	if err != nil {
		return "", err
	}
	cb, err := b.RawConfigFile()
	if err != nil {
		return "", err
	}
	la, err := a.Layers()
	if err != nil {
		return "", err
	}
	lb, err := b.Layers()
	if err != nil {
		return "", err
	}
	if len(la) != len(lb) {
		return fmt.Sprintf("%d layers against %d", len(la), len(lb)), nil
	}
	for i := range la {
		da, err := la[i].DiffID()
		if err != nil {
			return "", err
		}
		db, err := lb[i].DiffID()
		if err != nil {
			return "", err
		}
		if da == db {
			continue
		}
		what, err := firstFileDifference(la[i], lb[i])
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("layer %d of %d (%s): %s", i+1, len(la), layerHistory(ca, i), what), nil
	}
	if f := firstJSONDifference(ca, cb); f != "" {
		return "the image config's " + f, nil
	}
	return "the manifests (the layers and configs are the same: their compression differs)", nil
}

// layerHistory is the created_by of the history entry of layer i.
func layerHistory(rawConfig []byte, i int) string {
	var cfg v1.ConfigFile
	if json.Unmarshal(rawConfig, &cfg) != nil {
		return "?"
	}
	n := 0
	for _, h := range cfg.History {
		if h.EmptyLayer {
			continue
		}
		if n == i {
			return h.CreatedBy
		}
		n++
	}
	return "?"
}

// entrySum is what a layer says of one path.
type entrySum struct {
	typ           byte
	mode          int64
	uid, gid      int
	size          int64
	mtime         string
	link, content string
	xattrs        string
}

func (e entrySum) describe() string {
	return fmt.Sprintf("type %c mode %o owner %d:%d size %d mtime %s link %q content %.19s xattrs %s",
		e.typ, e.mode, e.uid, e.gid, e.size, e.mtime, e.link, e.content, e.xattrs)
}

func layerSums(l v1.Layer) (map[string]entrySum, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out := map[string]entrySum{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return nil, err
		}
		var xs []string
		for k, v := range h.PAXRecords {
			xs = append(xs, k+"="+v)
		}
		sort.Strings(xs)
		out[h.Name] = entrySum{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, size: h.Size,
			mtime: h.ModTime.UTC().Format("2006-01-02T15:04:05.999999999Z"), link: h.Linkname,
			content: "sha256:" + hex.EncodeToString(sum.Sum(nil)), xattrs: fmt.Sprint(xs)}
	}
}

// firstFileDifference is the first path (in name order) two layers differ in.
func firstFileDifference(a, b v1.Layer) (string, error) {
	ea, err := layerSums(a)
	if err != nil {
		return "", err
	}
	eb, err := layerSums(b)
	if err != nil {
		return "", err
	}
	for _, n := range sortedKeys(ea, eb) {
		x, okx := ea[n]
		y, oky := eb[n]
		switch {
		case !oky:
			return fmt.Sprintf("/%s is only in the first build", n), nil
		case !okx:
			return fmt.Sprintf("/%s is only in the second build", n), nil
		case x != y:
			return fmt.Sprintf("/%s differs: %s", n, fieldDifference(x, y)), nil
		}
	}
	return "the same files in another order", nil
}

func fieldDifference(x, y entrySum) string {
	switch {
	case x.content != y.content:
		return fmt.Sprintf("content %s vs %s", x.content, y.content)
	case x.mtime != y.mtime:
		return fmt.Sprintf("mtime %s vs %s", x.mtime, y.mtime)
	case x.mode != y.mode:
		return fmt.Sprintf("mode %o vs %o", x.mode, y.mode)
	case x.uid != y.uid || x.gid != y.gid:
		return fmt.Sprintf("owner %d:%d vs %d:%d", x.uid, x.gid, y.uid, y.gid)
	}
	return x.describe() + " vs " + y.describe()
}

// firstJSONDifference is the first top-level key (in name order) two JSON objects
// differ in, with both values.
func firstJSONDifference(a, b []byte) string {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return ""
	}
	for _, k := range sortedKeys(ma, mb) {
		if string(ma[k]) != string(mb[k]) {
			return fmt.Sprintf("%q: %.200s vs %.200s", k, ma[k], mb[k])
		}
	}
	return ""
}

// sortedKeys is the keys of a and b together, each once, in order.
func sortedKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

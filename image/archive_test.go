package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/kiln-build/kiln/internal/testenv"
)

// assembleOnBusybox pulls the busybox image into a store and assembles it plus one new
// layer (with a Docker media type, to see it renamed).
func assembleOnBusybox(t *testing.T) (*testStore, *Pulled, v1.Image) {
	t.Helper()
	return assembleOnBusyboxAt(t, testenv.Registry(t))
}

func assembleOnBusyboxAt(t *testing.T, host string) (*testStore, *Pulled, v1.Image) {
	t.Helper()
	testenv.PushImage(t, testenv.BusyboxImage(t), host+"/busybox:latest")
	store := newTestStore(t)
	base, err := Pull(context.Background(), store, host+"/busybox", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.DeepCopy()
	layers, _ := base.Image.Layers()
	add := newStoreLayer(t, store, "hello.txt", "hello\n", types.DockerLayer)
	diffID, _ := add.DiffID()
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
	cfg.History = append(cfg.History, v1.History{CreatedBy: "COPY hello.txt /"})
	cfg.Config.Labels = map[string]string{"b": "2", "a": "1"}
	img, err := Assemble(cfg, append(layers, add))
	if err != nil {
		t.Fatal(err)
	}
	return store, base, img
}

func TestAssemble(t *testing.T) {
	_, base, img := assembleOnBusybox(t)
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate: %v", err)
	}
	m, _ := img.Manifest()
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Fatalf("manifest types %s / %s", m.MediaType, m.Config.MediaType)
	}
	bm, _ := base.Image.Manifest()
	if len(m.Layers) != len(bm.Layers)+1 {
		t.Fatalf("%d layers", len(m.Layers))
	}
	for i, d := range bm.Layers {
		if m.Layers[i].Digest != d.Digest || m.Layers[i].Size != d.Size {
			t.Errorf("base layer %d changed: %v -> %v", i, d, m.Layers[i])
		}
	}
	if got := m.Layers[len(m.Layers)-1].MediaType; got != types.OCILayer {
		t.Errorf("docker layer type became %s, want %s", got, types.OCILayer)
	}
	// The same inputs give the same digest: the config is serialised once, deterministically.
	cf, _ := img.ConfigFile()
	ls, _ := img.Layers()
	again, err := Assemble(cf, ls)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("assemble is not deterministic: %s vs %s", d1, d2)
	}

	bad := cf.DeepCopy()
	bad.RootFS.DiffIDs = bad.RootFS.DiffIDs[1:]
	if _, err := Assemble(bad, ls); err == nil {
		t.Fatal("assemble accepted a config with too few diff_ids")
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testenv.OnCI() {
			t.Fatalf("%s not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestWriteOCIArchive(t *testing.T) {
	requireTool(t, "skopeo")
	_, _, img := assembleOnBusybox(t)
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "img.tar")
	var a, b bytes.Buffer
	if err := WriteOCIArchive(context.Background(), img, []string{"app:v1"}, &a); err != nil {
		t.Fatal(err)
	}
	if err := WriteOCIArchive(context.Background(), img, []string{"app:v1"}, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same image differ")
	}
	if err := os.WriteFile(tarPath, a.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	var insp struct {
		Digest string
		Layers []string
	}
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "oci-archive:"+tarPath)), &insp); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if insp.Digest != want.String() {
		t.Fatalf("skopeo sees %s, want %s", insp.Digest, want)
	}

	// The index.json annotations follow BuildKit: full name and tag part.
	run(t, "tar", "-xf", tarPath, "-C", dir, "index.json")
	raw, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ann := idx.Manifests[0].Annotations
	if ann[annotationImageName] != "docker.io/library/app:v1" || ann[annotationRefName] != "v1" {
		t.Fatalf("annotations %v", ann)
	}

	requireTool(t, "umoci")
	testenv.RequireRoot(t)
	layoutDir := filepath.Join(dir, "layout")
	run(t, "skopeo", "copy", "oci-archive:"+tarPath, "oci:"+layoutDir+":v1")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", layoutDir+":v1", bundle)
	got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "hello.txt"))
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("unpacked hello.txt = %q, %v", got, err)
	}
	if target, err := os.Readlink(filepath.Join(bundle, "rootfs", "bin", "sh")); err != nil || target != "busybox" {
		t.Fatalf("unpacked bin/sh -> %q, %v", target, err)
	}
}

func TestWriteDockerArchive(t *testing.T) {
	requireTool(t, "skopeo")
	_, _, img := assembleOnBusybox(t)
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDockerArchive(context.Background(), img, []string{"app:v1", "example.com/team/app:latest"}, f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var insp struct {
		RepoTags []string
		Layers   []string
	}
	// skopeo reads docker-archive by manifest.json; it lists the tags of the image.
	out := run(t, "skopeo", "inspect", "docker-archive:"+tarPath)
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	if len(insp.Layers) != len(m.Layers) {
		t.Fatalf("skopeo sees %d layers, want %d", len(insp.Layers), len(m.Layers))
	}
	list := run(t, "tar", "-xOf", tarPath, "manifest.json")
	var dm []dockerManifestEntry
	if err := json.Unmarshal([]byte(list), &dm); err != nil {
		t.Fatal(err)
	}
	if len(dm) != 1 || strings.Join(dm[0].RepoTags, ",") != "app:v1,example.com/team/app:latest" {
		t.Fatalf("manifest.json = %s", list)
	}
	// skopeo finds the image by each tag (it matches manifest.json RepoTags), and not
	// by one it does not have.
	run(t, "skopeo", "inspect", "docker-archive:"+tarPath+":app:v1")
	run(t, "skopeo", "inspect", "docker-archive:"+tarPath+":example.com/team/app:latest")
	if out, err := exec.Command("skopeo", "inspect", "docker-archive:"+tarPath+":other:v1").CombinedOutput(); err == nil {
		t.Fatalf("skopeo found an image tagged other:v1: %s", out)
	}
	// The OCI half is there too, so the tarball also reads as an OCI archive.
	run(t, "skopeo", "inspect", "oci-archive:"+tarPath+":v1")
}

// oneByteReader hides that its source is a file and returns short reads, as a
// download does.
type oneByteReader struct {
	r   io.Reader
	err error // returned after the content instead of io.EOF
}

func (o *oneByteReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p[:min(len(p), 7919)])
	if err == io.EOF && o.err != nil {
		err = o.err
	}
	return n, err
}

// TestCopyLayerFileStream: a layer that streams from elsewhere lands in the archive
// byte for byte after its header and padded to a block; a stream that ends early or
// fails, or a cancelled build, is an error that names the layer.
func TestCopyLayerFileStream(t *testing.T) {
	content := make([]byte, 3*writebackChunk/2+123)
	for i := range content {
		content[i] = byte(i*31 + i>>9)
	}
	d := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}, Size: int64(len(content))}
	write := func(ctx context.Context, src io.Reader) (*os.File, error) {
		f, err := os.Create(filepath.Join(t.TempDir(), "out.tar"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		tw := tar.NewWriter(f)
		if err := tw.WriteHeader(&tar.Header{Name: "before", Mode: 0o644, Size: 3}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("abc"))
		if err := copyLayerFile(ctx, tw, f, src, "blobs/sha256/"+d.Digest.Hex, d); err != nil {
			return nil, err
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return f, nil
	}

	f, err := write(context.Background(), &oneByteReader{r: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	f.Seek(0, io.SeekStart)
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the archive does not read back: %v", err)
		}
		names = append(names, h.Name)
		if h.Name == "blobs/sha256/"+d.Digest.Hex {
			got, _ := io.ReadAll(tr)
			if !bytes.Equal(got, content) {
				t.Errorf("streamed layer: %d bytes differ from the %d streamed", len(got), len(content))
			}
		}
	}
	if len(names) != 2 {
		t.Errorf("archive holds %q", names)
	}

	if _, err := write(context.Background(), &oneByteReader{r: bytes.NewReader(content[:len(content)-1])}); err == nil || !strings.Contains(err.Error(), d.Digest.String()) {
		t.Errorf("a stream one byte short: %v, want an error naming the layer", err)
	}
	broken := errors.New("connection reset")
	if _, err := write(context.Background(), &oneByteReader{r: bytes.NewReader(content[:1000]), err: broken}); !errors.Is(err, broken) {
		t.Errorf("a stream that fails: %v, want its error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := write(ctx, &oneByteReader{r: bytes.NewReader(content)}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled build: %v, want context.Canceled", err)
	}
}

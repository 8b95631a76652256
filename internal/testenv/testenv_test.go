package testenv

import (
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestBusyboxRootfs(t *testing.T) {
	dir := t.TempDir()
	BusyboxRootfs(t, dir)
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "busybox" {
		t.Fatalf("bin/sh -> %q, %v; want busybox", target, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "tmp"))
	if err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Fatalf("tmp mode %v, %v; want 1777", fi.Mode(), err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "etc/passwd"))
	if err != nil || string(b) != passwd {
		t.Fatalf("etc/passwd = %q, %v", b, err)
	}
	for _, d := range []string{"proc", "dev", "sys", "usr/bin", "usr/sbin", "sbin", "var", "root", "home/app"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: not a dir (%v)", d, err)
		}
	}
}

func TestBusyboxImageIsValidAndReproducible(t *testing.T) {
	a, b := BusyboxImage(t), BusyboxImage(t)
	if err := validate.Image(a); err != nil {
		t.Fatalf("validate: %v", err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("digests differ: %s vs %s", da, db)
	}
	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "sh" || cf.Config.Env[0] != BusyboxEnvPath {
		t.Fatalf("config = %+v", cf)
	}
}

func TestRegistryRoundTrip(t *testing.T) {
	host := Registry(t)
	img := BusyboxImage(t)
	PushImage(t, img, host+"/busybox:latest")
	ref, err := name.ParseReference(host + "/busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
}

func TestWriteBusyboxOCILayout(t *testing.T) {
	if _, err := BusyboxPath(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	if err := WriteBusyboxOCILayout(dir); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate: %v", err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "latest" {
		t.Fatalf("index = %+v", im)
	}
}

func TestDockerRegistry(t *testing.T) {
	host := DockerRegistry(t)
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/v2/: %s", resp.Status)
	}
}

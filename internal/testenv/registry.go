package testenv

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry starts go-containerregistry's in-memory registry on 127.0.0.1 (plain HTTP,
// which ggcr and kiln use for loopback hosts) and returns its host:port. It is closed
// when the test ends.
func Registry(t testing.TB) string {
	t.Helper()
	return Host(RegistryServer(t))
}

// RegistryServer is Registry for tests that need to stop the server themselves (to
// check that nothing talks to it any more); closing it twice is harmless.
func RegistryServer(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return srv
}

// Host is the host:port of an httptest server.
func Host(srv *httptest.Server) string {
	return strings.TrimPrefix(srv.URL, "http://")
}

// PushImage pushes img to ref (e.g. Registry(t)+"/busybox:latest").
func PushImage(t testing.TB, img v1.Image, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// PushIndex pushes a multi-platform index to ref.
func PushIndex(t testing.TB, idx v1.ImageIndex, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

package image

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/testenv"
)

// pingCountingRegistry is an in-process registry that counts the connections made to
// it and the pings of /v2/ (each new ggcr transport sends one, and on a registry
// with token auth asks for a token after it).
type pingCountingRegistry struct {
	srv *httptest.Server

	mu           sync.Mutex
	conns, pings int
}

func newPingCountingRegistry(t *testing.T) *pingCountingRegistry {
	c := &pingCountingRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			c.mu.Lock()
			c.pings++
			c.mu.Unlock()
		}
		reg.ServeHTTP(w, r)
	}))
	c.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.mu.Lock()
			c.conns++
			c.mu.Unlock()
		}
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	return c
}

func (c *pingCountingRegistry) counts() (conns, pings int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns, c.pings
}

// TestClientReusesConnectionsAndAuth: two pulls of a five-layer image and a blob
// fetch through one Client ping the registry once and open no connection per call;
// without a Client each call pings again on a connection of its own.
func TestClientReusesConnectionsAndAuth(t *testing.T) {
	ctx := context.Background()
	reg := newPingCountingRegistry(t)
	host := testenv.Host(reg.srv)
	img, err := random.Image(1024, 5)
	if err != nil {
		t.Fatal(err)
	}
	testenv.PushImage(t, img, host+"/app:v1")
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()

	calls := func(client *Client) (conns, pings int) {
		c0, p0 := reg.counts()
		for range 2 {
			if _, err := Pull(ctx, newTestStore(t), host+"/app:v1", PullOptions{Client: client}); err != nil {
				t.Fatal(err)
			}
		}
		r, _ := ParseReference(host+"/app@"+ld.String(), nil)
		l, err := remote.Layer(r.Context().Digest(ld.String()), client.Options(ctx, 1, 0)...)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, rc)
		rc.Close()
		c1, p1 := reg.counts()
		return c1 - c0, p1 - p0
	}

	client, err := NewClient(0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conns, pings := calls(client)
	if pings != 1 {
		t.Errorf("through a Client: %d pings of /v2/, want 1", pings)
	}
	// The pulls fetch up to four layers at once; a connection per call would be
	// about twenty.
	if conns > 4 {
		t.Errorf("through a Client: %d connections, want at most 4", conns)
	}
	freshConns, freshPings := calls(nil)
	if freshPings <= 2 || freshConns <= conns {
		t.Errorf("without a Client: %d pings and %d connections; the test cannot tell reuse from none", freshPings, freshConns)
	}
	t.Logf("through a Client: %d connections, %d pings; without: %d, %d", conns, pings, freshConns, freshPings)
}

package image

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

func TestPush(t *testing.T) {
	requireTool(t, "skopeo")
	reg := testenv.DockerRegistry(t)
	proxy, host := newRecordingProxy(t, reg)
	_, base, img := assembleOnBusyboxAt(t, host)
	baseManifest, _ := base.Image.Manifest()
	baseLayer := baseManifest.Layers[0].Digest

	var mu sync.Mutex
	var msgs []string
	opts := PushOptions{Jobs: 2, Progress: func(m string) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() }}
	proxy.take()
	if err := Push(context.Background(), img, []string{host + "/app:v1"}, opts); err != nil {
		t.Fatal(err)
	}
	reqs := proxy.take()
	// The base layer came from host/busybox: the registry is asked to mount it, not sent it.
	mounted := false
	for _, r := range reqs {
		if strings.HasPrefix(r, "POST /v2/app/blobs/uploads/?") && strings.Contains(r, "mount="+strings.ReplaceAll(baseLayer.String(), ":", "%3A")) && strings.Contains(r, "from=busybox") && strings.HasSuffix(r, "Created") {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("base layer %s was not mounted from busybox; requests:\n%s", baseLayer, strings.Join(reqs, "\n"))
	}
	mu.Lock()
	if len(msgs) == 0 {
		t.Error("no progress reported")
	}
	mu.Unlock()

	var insp struct {
		Digest string
		Layers []string
	}
	out := run(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+reg+"/app:v1")
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if insp.Digest != want.String() || len(insp.Layers) != 2 || insp.Layers[0] != baseLayer.String() {
		t.Fatalf("registry has %s %v; want %s with base layer %s", insp.Digest, insp.Layers, want, baseLayer)
	}

	// A second push finds every blob and uploads nothing.
	if err := Push(context.Background(), img, []string{host + "/app:v1", host + "/app:latest"}, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range proxy.take() {
		if strings.Contains(r, "/blobs/uploads/") {
			t.Errorf("second push uploaded: %s", r)
		}
	}
}

func TestPushUnreachable(t *testing.T) {
	srv := testenv.RegistryServer(t)
	host := testenv.Host(srv)
	srv.Close()
	_, _, img := assembleOnBusybox(t)
	err := Push(context.Background(), img, []string{host + "/app:v1"}, PushOptions{})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach registry "+host) {
		t.Fatalf("push to a closed registry: %v", err)
	}
}

package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/kiln-build/kiln/internal/testenv"
)

func TestPullStoresVerifiedBlobsAndWorksOffline(t *testing.T) {
	ctx := context.Background()
	srv := testenv.RegistryServer(t)
	host := testenv.Host(srv)
	img := testenv.BusyboxImage(t)
	testenv.PushImage(t, img, host+"/busybox:latest")
	want, _ := img.Digest()
	store := newTestStore(t)

	p, err := Pull(ctx, store, host+"/busybox", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.ManifestDigest != want || p.Ref != host+"/busybox:latest" {
		t.Fatalf("pulled %s %s, want %s", p.Ref, p.ManifestDigest, want)
	}
	checkBlobsVerified(t, store, p.Image)
	if err := validate.Image(p.Image); err != nil {
		t.Fatalf("validate pulled image: %v", err)
	}

	srv.Close()
	// A tag is resolved at every pull: without the registry it fails, and says how
	// to use the stored image; Offline uses it.
	_, err = Pull(ctx, store, host+"/busybox:latest", PullOptions{})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "--offline") {
		t.Fatalf("pull of a tag with the registry down: %v; want unreachable, suggesting --offline", err)
	}
	var notes []string
	again, err := Pull(ctx, store, host+"/busybox:latest", PullOptions{Offline: true, Progress: func(m string) { notes = append(notes, m) }})
	if err != nil {
		t.Fatalf("offline pull from the store with the registry down: %v", err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "offline") {
		t.Errorf("offline pull said %q, want one note that it used the stored image", notes)
	}
	if _, err := Pull(ctx, newTestStore(t), host+"/busybox:latest", PullOptions{Offline: true}); err == nil || !strings.Contains(err.Error(), "not in the store") {
		t.Errorf("offline pull of an image never pulled: %v, want not in the store", err)
	}
	if again.ManifestDigest != want {
		t.Fatalf("second pull: %s, want %s", again.ManifestDigest, want)
	}
	if err := validate.Image(again.Image); err != nil {
		t.Fatalf("validate stored image: %v", err)
	}

	_, err = Pull(ctx, store, host+"/busybox:latest", PullOptions{ForcePull: true})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach registry "+host) {
		t.Fatalf("force pull with the registry down: %v; want cannot reach registry %s", err, host)
	}
	if testing.Verbose() {
		t.Log(err)
	}
}

func TestPullErrors(t *testing.T) {
	good := testenv.Registry(t)
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	}))
	t.Cleanup(denied.Close)
	deniedHost := testenv.Host(denied)

	tests := []struct {
		name, ref string
		kind      error
		text      string
	}{
		{"not found", good + "/x", ErrNotFound, "image " + good + "/x:latest not found"},
		{"unauthorized", deniedHost + "/private:v1", ErrUnauthorized, "pull access denied for " + deniedHost + "/private:v1"},
		{"invalid", "UPPER/Case::x", nil, "invalid image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Pull(context.Background(), newTestStore(t), tt.ref, PullOptions{})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("error %v is not %v", err, tt.kind)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
		})
	}
}

func TestPullPicksPlatformFromIndex(t *testing.T) {
	host := testenv.Registry(t)
	platforms := []v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "amd64"}}
	var adds []mutate.IndexAddendum
	want := map[string]v1.Hash{}
	for _, p := range platforms {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		img, _ = mutate.ConfigFile(img, cf)
		d, _ := img.Digest()
		want[p.Architecture] = d
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	testenv.PushIndex(t, mutate.AppendManifests(empty.Index, adds...), host+"/multi:latest")

	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			p, err := Pull(context.Background(), newTestStore(t), host+"/multi", PullOptions{Platform: v1.Platform{OS: "linux", Architecture: arch}})
			if err != nil {
				t.Fatal(err)
			}
			cf, err := p.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if p.ManifestDigest != want[arch] || cf.Architecture != arch {
				t.Fatalf("got %s (%s), want %s", p.ManifestDigest, cf.Architecture, want[arch])
			}
		})
	}
	_, err := Pull(context.Background(), newTestStore(t), host+"/multi", PullOptions{Platform: v1.Platform{OS: "linux", Architecture: "s390x"}})
	if err == nil || !strings.Contains(err.Error(), host+"/multi:latest") {
		t.Fatalf("pull of a missing platform: %v", err)
	}
}

func TestPullPreservesManifestMediaTypes(t *testing.T) {
	host := testenv.Registry(t)
	for _, mt := range []types.MediaType{types.DockerManifestSchema2, types.OCIManifestSchema1} {
		t.Run(string(mt), func(t *testing.T) {
			img, err := random.Image(128, 2)
			if err != nil {
				t.Fatal(err)
			}
			img = mutate.MediaType(img, mt)
			ref := host + "/mt:" + strings.NewReplacer(".", "-", "/", "-", "+", "-").Replace(string(mt))
			testenv.PushImage(t, img, ref)
			store := newTestStore(t)
			p, err := Pull(context.Background(), store, ref, PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := p.Image.MediaType()
			want, _ := img.Digest()
			if got != mt || p.ManifestDigest != want {
				t.Fatalf("media type %s digest %s, want %s %s", got, p.ManifestDigest, mt, want)
			}
			if err := validate.Image(p.Image); err != nil {
				t.Fatalf("validate: %v", err)
			}
			checkBlobsVerified(t, store, p.Image)
		})
	}
}

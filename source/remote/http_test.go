package remote

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestURLFileName(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"https://example.com/pkg/tool-1.2.tar.gz", "tool-1.2.tar.gz"},
		{"https://example.com/pkg/tool?version=2#frag", "tool"},
		{"https://example.com/", "__unnamed__"},
		{"https://example.com", "__unnamed__"},
		{"https://example.com/a/..", "download"},
		{"https://example.com/%0a", "download"},
	} {
		if got := URLFileName(tc.url); got != tc.want {
			t.Errorf("URLFileName(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

func TestParseNamedContextKinds(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    ContextKind
		wantErr bool
	}{
		{"./dir", ContextDir, false},
		{"/abs/dir", ContextDir, false},
		{"github.com/foo/bar", ContextDir, false}, // BuildKit: indistinguishable from a path
		{"oci-layout:///l:tag", ContextOCILayout, false},
		{"docker-image://busybox", ContextImage, false},
		{"https://example.com/repo.git#v1:sub", ContextGit, false},
		{"git@github.com:moby/buildkit.git", ContextGit, false},
		{"git://127.0.0.1/repo.git", ContextGit, false},
		{"https://example.com/file.tar.gz", ContextURL, false},
		{"http://example.com/", ContextURL, false},
		{"ftp://example.com/x", 0, true},
		{"https://example.com/repo.git?bogus=1", 0, true},
	} {
		nc, err := ParseNamedContext(tc.value)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: want an error, got %+v", tc.value, nc)
			}
			continue
		}
		if err != nil || nc.Kind != tc.want {
			t.Errorf("%s: kind %v, err %v; want kind %v", tc.value, nc.Kind, err, tc.want)
		}
	}
}

func TestMatchRemoteRef(t *testing.T) {
	ls := "aaa\tHEAD\naaa\trefs/heads/main\nbbb\trefs/heads/v1\nccc\trefs/tags/v1\nddd\trefs/tags/v1^{}\neee\trefs/tags/light\n"
	for _, tc := range []struct{ name, commit, ref string }{
		{"HEAD", "aaa", "HEAD"},
		{"main", "aaa", "refs/heads/main"},
		{"v1", "ddd", "refs/tags/v1"}, // a tag wins over a branch, as in git, and is peeled
		{"refs/heads/v1", "bbb", "refs/heads/v1"},
		{"light", "eee", "refs/tags/light"},
		{"nope", "", ""},
	} {
		commit, ref := matchRemoteRef(ls, tc.name)
		if commit != tc.commit || ref != tc.ref {
			t.Errorf("%s: %q %q, want %q %q", tc.name, commit, ref, tc.commit, tc.ref)
		}
	}
}

func TestCheckSHA256(t *testing.T) {
	good := "sha256:" + strings.Repeat("ab", 32)
	for in, ok := range map[string]bool{good: true, "sha256:abc": false, "sha512:" + strings.Repeat("ab", 32): false, strings.Repeat("ab", 32): false} {
		if err := CheckSHA256(in); (err == nil) != ok {
			t.Errorf("CheckSHA256(%q) = %v", in, err)
		}
	}
}

// FetchURL retries a 5xx, not a 4xx, sets the mode and mtime, and checks --checksum.
func TestFetchURL(t *testing.T) {
	var calls atomic.Int32
	mod := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch r.URL.Path {
		case "/flaky":
			if n == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
		case "/gone":
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
		w.Write([]byte("data"))
	}))
	defer srv.Close()
	ctx := context.Background()
	scratch := t.TempDir()
	tmp := func(pattern string) (string, error) { return os.MkdirTemp(scratch, pattern) }

	d, err := FetchURL(ctx, srv.URL+"/flaky", "f", "", tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	if filepath.Dir(d.Dir) != scratch {
		t.Errorf("download in %s, want a dir of the store's tmp %s (issue #15)", d.Dir, scratch)
	}
	if calls.Load() != 2 {
		t.Errorf("%d requests, want 2 (one retry)", calls.Load())
	}
	fi, err := os.Stat(filepath.Join(d.Dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mod) || fi.Size() != 4 {
		t.Errorf("file: mode %v mtime %v size %d", fi.Mode(), fi.ModTime(), fi.Size())
	}
	if want := "sha256:3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"; d.Digest != want {
		t.Errorf("digest %s, want %s", d.Digest, want)
	}

	calls.Store(0)
	if _, err := FetchURL(ctx, srv.URL+"/gone", "f", "", tmp); err == nil || !strings.Contains(err.Error(), "404") || calls.Load() != 1 {
		t.Errorf("404: err %v after %d requests, want one request", err, calls.Load())
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	_, err = FetchURL(ctx, srv.URL+"/ok", "f", wrong, tmp)
	if err == nil || !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), d.Digest) {
		t.Errorf("checksum mismatch: %v", err)
	}
	// A failed download leaves nothing in the scratch dir; the good one is there
	// until released.
	d.Release()
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("left in the store's tmp: %v", left)
	}
}

package solver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/kiln-build/kiln/source"
)

// ADD of an http(s) URL, as BuildKit's http source and dockerfile frontend do it: the
// file is named by the last element of the URL path ("__unnamed__" when there is none),
// created 0600 and owned by root, its mtime taken from Last-Modified (else the epoch),
// and copied like a local file without extraction unless --unpack=true. The body is
// streamed to a temp file while it is hashed, never held in memory.
//
// The cache key: with --checksum, the checksum and the file name, so a cache hit does
// not touch the network (the download, on a miss, must match it); without one, the
// URL is downloaded on every build and keyed by its content digest, name and
// Last-Modified (BuildKit asks the server with ETags instead; downloading is the
// simple correct thing).

const (
	// downloadAttempts bounds retries of a download that failed on the network or with
	// a 5xx/429 status; a 4xx other than 429 fails at once.
	downloadAttempts = 3
	// downloadStall aborts a download that received nothing for this long: a whole
	// download may take long, a silent server should not hang the build.
	downloadStall = 2 * time.Minute
	// downloadHeaderTimeout bounds the wait for the response headers.
	downloadHeaderTimeout = time.Minute
)

// download is a URL saved to a temp dir.
type download struct {
	dir     string // holds the file alone
	name    string // the file's name in dir
	digest  string // "sha256:<hex>" of the content
	modTime time.Time
	lastMod string // the Last-Modified header as sent ("" when there was none)
}

func (d *download) release() { os.RemoveAll(d.dir) }

// urlFileName is the name BuildKit's frontend gives a downloaded file: the URL path's
// last element, sanitised as BuildKit's pathutil.SafeFileName does.
func urlFileName(raw string) string {
	name := "__unnamed__"
	if u, err := url.Parse(raw); err == nil {
		if base := path.Base(u.Path); base != "." && base != "/" {
			name = base
		}
	}
	name = filepath.Base(strings.TrimSpace(name))
	if name == "" || name == "." || name == ".." || name == "/" || strings.ContainsFunc(name, func(r rune) bool { return r == 0 || unicode.IsControl(r) }) {
		return "download"
	}
	return name
}

// urlPart prepares an ADD of a URL.
func (b *build) urlPart(ctx context.Context, cs copySpec, base source.CopyOptions, raw string) (*copyPart, error) {
	name := urlFileName(raw)
	opts := base
	opts.Sources = []string{name}
	// Remote files are not extracted unless --unpack=true.
	opts.KeepArchives = cs.unpack == nil || !*cs.unpack
	p := &copyPart{opts: opts, release: func() {}}
	if cs.checksum != "" {
		if err := checkSHA256(cs.checksum); err != nil {
			return nil, err
		}
		p.content = digestOf("url-checksum", name, cs.checksum)
		p.files = map[string]string{raw: cs.checksum}
		p.fetch = func(ctx context.Context) (source.Source, error) {
			d, err := fetchURL(ctx, raw, name, cs.checksum)
			if err != nil {
				return source.Source{}, err
			}
			p.release = d.release
			return source.Source{Root: d.dir}, nil
		}
		return p, nil
	}
	d, err := fetchURL(ctx, raw, name, "")
	if err != nil {
		return nil, err
	}
	p.release = d.release
	p.src = source.Source{Root: d.dir}
	p.content = digestOf("url", name, d.digest, d.lastMod)
	p.files = map[string]string{raw: d.digest}
	return p, nil
}

// checkSHA256 validates an ADD --checksum for a URL: "sha256:" and 64 hex digits,
// SHA-256 being the only algorithm the Dockerfile reference allows.
func checkSHA256(sum string) error {
	hexPart, ok := strings.CutPrefix(sum, "sha256:")
	if _, err := hex.DecodeString(hexPart); !ok || err != nil || len(hexPart) != 64 {
		return fmt.Errorf("invalid checksum %q: want sha256:<64 hex digits>", sum)
	}
	return nil
}

// fetchURL downloads raw into a new temp dir as name, with retries, and verifies
// checksum when given. The caller releases the result.
func fetchURL(ctx context.Context, raw, name, checksum string) (*download, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid URL %q", raw)
	}
	dir, err := os.MkdirTemp("", "kiln-url-")
	if err != nil {
		return nil, err
	}
	d := &download{dir: dir, name: name}
	client := downloadClient()
	for attempt := 1; ; attempt++ {
		err = d.fetchOnce(ctx, client, raw)
		if err == nil {
			break
		}
		var se *statusError
		retry := ctx.Err() == nil && (!errors.As(err, &se) || se.code >= 500 || se.code == http.StatusTooManyRequests)
		if !retry || attempt == downloadAttempts {
			d.release()
			return nil, fmt.Errorf("download %s: %w", redact(u), err)
		}
		select {
		case <-time.After(time.Duration(attempt) * time.Second):
		case <-ctx.Done():
			d.release()
			return nil, ctx.Err()
		}
	}
	if checksum != "" && d.digest != checksum {
		d.release()
		return nil, fmt.Errorf("digest mismatch for %s: got %s, expected %s (--checksum)", redact(u), d.digest, checksum)
	}
	return d, nil
}

// downloadClient honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY (the default transport's
// ProxyFromEnvironment) and bounds connecting and waiting for headers.
func downloadClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = downloadHeaderTimeout
	return &http.Client{Transport: tr}
}

type statusError struct {
	code   int
	status string
}

func (e *statusError) Error() string { return "server answered " + e.status }

// fetchOnce makes one GET and streams the body to the file, hashing it on the way.
func (d *download) fetchOnce(ctx context.Context, client *http.Client, raw string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &statusError{code: resp.StatusCode, status: resp.Status}
	}
	p := filepath.Join(d.dir, d.name) // name is one sanitised element
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	stalled := errors.New("no data received for " + downloadStall.String())
	watchdog := time.AfterFunc(downloadStall, func() { cancel(stalled) })
	defer watchdog.Stop()
	h := sha256.New()
	body := readerFunc(func(b []byte) (int, error) {
		n, err := resp.Body.Read(b)
		watchdog.Reset(downloadStall)
		return n, err
	})
	_, err = io.Copy(io.MultiWriter(f, h), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, stalled) {
			return cause
		}
		return err
	}
	// The umask may have narrowed the mode; BuildKit's file is 0600 exactly.
	if err := os.Chmod(p, 0o600); err != nil {
		return err
	}
	d.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	d.lastMod = resp.Header.Get("Last-Modified")
	d.modTime = time.Unix(0, 0)
	if t, err := http.ParseTime(d.lastMod); d.lastMod != "" && err == nil {
		d.modTime = t
	}
	return os.Chtimes(p, d.modTime, d.modTime)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// redact drops credentials from a URL for messages.
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = url.User("xxxxx")
	return c.String()
}

// remoteContext materialises a --build-context that is a git repository or a URL, for
// COPY --from. A URL context is a directory holding the downloaded file as "context"
// (BuildKit's dockerui named contexts: llb.HTTP with Filename "context"); a git
// context is the checkout (its subdir when the URL names one).
func (b *build) remoteContext(ctx context.Context, nc NamedContext) (*copySource, error) {
	if nc.Kind == ContextURL {
		d, err := fetchURL(ctx, nc.Ref, "context", "")
		if err != nil {
			return nil, err
		}
		return &copySource{
			src:     source.Source{Root: d.dir},
			content: digestOf("url", "context", d.digest, d.lastMod),
			release: d.release,
		}, nil
	}
	g, err := resolveGit(ctx, nc.Ref, "", nil)
	if err != nil {
		return nil, err
	}
	root, err := g.checkout(ctx)
	if err != nil {
		g.release()
		return nil, err
	}
	return &copySource{src: source.Source{Root: root}, content: g.key(), release: g.release}, nil
}

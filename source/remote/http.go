package remote

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

// HTTP sources: ADD of an http(s) URL, as BuildKit's http source and dockerfile frontend do it: the
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

// Download is a URL saved to a scratch dir.
type Download struct {
	Dir     string // holds the file alone
	Name    string // the file's name in Dir
	Digest  string // "sha256:<hex>" of the content
	ModTime time.Time
	LastMod string // the Last-Modified header as sent ("" when there was none)
}

// Release removes the download.
func (d *Download) Release() { os.RemoveAll(d.Dir) }

// URLFileName is the name BuildKit's frontend gives a downloaded file: the URL path's
// last element, sanitised as BuildKit's pathutil.SafeFileName does.
func URLFileName(raw string) string {
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

// CheckSHA256 validates an ADD --checksum for a URL: "sha256:" and 64 hex digits,
// SHA-256 being the only algorithm the Dockerfile reference allows.
func CheckSHA256(sum string) error {
	hexPart, ok := strings.CutPrefix(sum, "sha256:")
	if _, err := hex.DecodeString(hexPart); !ok || err != nil || len(hexPart) != 64 {
		return fmt.Errorf("invalid checksum %q: want sha256:<64 hex digits>", sum)
	}
	return nil
}

// FetchURL downloads raw into a new scratch dir (made by tmp) as name, with retries,
// and verifies checksum when given. The caller releases the result.
func FetchURL(ctx context.Context, raw, name, checksum string, tmp source.TempDirFunc) (*Download, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid URL %q", raw)
	}
	dir, err := tmp("kiln-url-")
	if err != nil {
		return nil, err
	}
	d := &Download{Dir: dir, Name: name}
	client := downloadClient()
	for attempt := 1; ; attempt++ {
		err = d.fetchOnce(ctx, client, raw)
		if err == nil {
			break
		}
		var se *statusError
		retry := ctx.Err() == nil && (!errors.As(err, &se) || se.code >= 500 || se.code == http.StatusTooManyRequests)
		if !retry || attempt == downloadAttempts {
			d.Release()
			return nil, fmt.Errorf("download %s: %w", redact(u), err)
		}
		select {
		case <-time.After(time.Duration(attempt) * time.Second):
		case <-ctx.Done():
			d.Release()
			return nil, ctx.Err()
		}
	}
	if checksum != "" && d.Digest != checksum {
		d.Release()
		return nil, fmt.Errorf("digest mismatch for %s: got %s, expected %s (--checksum)", redact(u), d.Digest, checksum)
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
func (d *Download) fetchOnce(ctx context.Context, client *http.Client, raw string) error {
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
	p := filepath.Join(d.Dir, d.Name) // name is one sanitised element
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
	d.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	d.LastMod = resp.Header.Get("Last-Modified")
	d.ModTime = time.Unix(0, 0)
	if t, err := http.ParseTime(d.LastMod); d.LastMod != "" && err == nil {
		d.ModTime = t
	}
	return os.Chtimes(p, d.ModTime, d.ModTime)
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

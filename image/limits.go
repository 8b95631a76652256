package image

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MaxMetadataSize bounds a manifest, an index or an image config, from a registry or an
// OCI layout. Real ones are kilobytes (a config with a long history a few hundred); a
// registry that serves tens of megabytes is broken or hostile, and go-containerregistry
// alone would read a manifest of up to 100 MiB, and a config of any declared size, into
// memory. 4 MiB is also the size registries commonly limit the manifests they accept to.
const MaxMetadataSize = 4 << 20

// ErrTooLarge is the kind of a registry error for a manifest, index or config over
// MaxMetadataSize; test with errors.Is.
var ErrTooLarge = errors.New("over the size limit")

// tooLargeError names what was too large and, when known, how large it was.
type tooLargeError struct {
	what string // "manifest", "index", "config"
	size int64  // bytes; -1 when the body had no length and was cut off at the limit
}

func (e *tooLargeError) Error() string {
	size := fmt.Sprintf("%d bytes", e.size)
	if e.size < 0 {
		size = "more than " + fmt.Sprint(MaxMetadataSize) + " bytes"
	}
	return fmt.Sprintf("its %s is %s, over kiln's limit of %d MiB for manifests, indexes and configs; refusing it", e.what, size, MaxMetadataSize>>20)
}

func (e *tooLargeError) Is(target error) bool { return target == ErrTooLarge }

// checkMetadataSize refuses a manifest, index or config of size bytes.
func checkMetadataSize(what string, size int64) error {
	if size > MaxMetadataSize {
		return &tooLargeError{what: what, size: size}
	}
	return nil
}

// limitManifest refuses a manifests/ response whose length is over MaxMetadataSize
// before its body is read, and cuts off one without a length at the limit. Blob
// responses pass: a config's declared size is checked against the manifest instead
// (copyToStore), and go-containerregistry reads a blob no further than that size.
func limitManifest(req *http.Request, resp *http.Response) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/manifests/") || resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	what := "manifest"
	if types.MediaType(resp.Header.Get("Content-Type")).IsIndex() {
		what = "index"
	}
	if err := checkMetadataSize(what, resp.ContentLength); err != nil {
		resp.Body.Close()
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: MaxMetadataSize, what: what}
	return resp, nil
}

// limitedBody fails a read past left bytes.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	what string
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	if int64(n) > l.left {
		return 0, &tooLargeError{what: l.what, size: -1}
	}
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

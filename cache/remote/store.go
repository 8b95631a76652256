package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
)

// Store is the local store with remote caches behind it (solver.LazyStore): a step
// the local store misses is looked up in each --cache-from in order; a hit's layer is
// fetched, verified and kept in the local store only when something reads it.
type Store struct {
	*cache.Store
	ctx     context.Context // for fetches, which v1.Layer's methods cannot pass a context to
	sources []*source
	note    func(string)

	mu      sync.Mutex
	hits    map[string]hit             // remote entries handed out, by key
	bad     map[v1.Hash]bool           // blobs refused this build: their steps miss
	fetches map[v1.Hash]*fetch         // one download per blob
	fetched map[v1.Hash]int64          // downloaded, with their sizes
	byBlob  map[v1.Hash][]*cache.Entry // remote entries by layer digest, recorded locally once fetched
	mounted map[v1.Hash]*source        // layers handed out still remote, for the summary
	// usedMounts are the cache mounts executed steps used, by identity.
	usedMounts map[string]*mountUse
	memoPrefix string
	memos      map[string]string // shared memos this build used (selections.go)
}

type hit struct {
	src *source
	e   *cache.Entry
}

type fetch struct {
	done chan struct{}
	err  error
}

// StoreOptions configure Open.
type StoreOptions struct {
	// KeyVersion is the engine's key version (solver.KeyVersion): records of
	// another are skipped.
	KeyVersion string
	// Insecure registries are spoken to over plain HTTP.
	Insecure []string
	// Client is the process's registry client, whose connections and tokens every
	// call on a registry cache reuses (nil: each call starts afresh).
	Client *image.Client
	// Note receives progress lines (which caches were read, what was downloaded),
	// Warn the failures of caches with ignore-error=true.
	Note, Warn func(string)
	// SourceDateEpoch is the build's: inline records of layers clamped to another
	// are skipped (inline.go).
	SourceDateEpoch *time.Time
	// MemoPrefix begins the digest-cache keys that travel with the cache (the
	// front end's selection digests, selections.go); "" shares none.
	MemoPrefix string
}

// Open reads every --cache-from, all at once, and puts them behind local in order.
// A cache that cannot be read fails Open unless its spec says ignore-error=true
// (then Warn). ctx bounds the blob downloads of the whole build.
func Open(ctx context.Context, local *cache.Store, from []Spec, o StoreOptions) (*Store, error) {
	if o.Note == nil {
		o.Note = func(string) {}
	}
	if o.Warn == nil {
		o.Warn = o.Note
	}
	s := &Store{
		Store: local, ctx: ctx, note: o.Note,
		hits: map[string]hit{}, bad: map[v1.Hash]bool{}, fetches: map[v1.Hash]*fetch{},
		fetched: map[v1.Hash]int64{}, byBlob: map[v1.Hash][]*cache.Entry{}, mounted: map[v1.Hash]*source{},
		usedMounts: map[string]*mountUse{}, memoPrefix: o.MemoPrefix, memos: map[string]string{},
	}
	// The caches are read all at once (each is a manifest and a config, a few
	// round trips to its registry), then taken in the order given: the first that
	// holds a key wins.
	type loaded struct {
		src *source
		err error
	}
	got := make([]loaded, len(from))
	var wg sync.WaitGroup
	for i, spec := range from {
		wg.Go(func() {
			be, err := newBackend(ctx, spec, o.Insecure, o.Client)
			if err == nil {
				got[i].src, err = load(ctx, spec, be, o.KeyVersion, o.SourceDateEpoch, o.Note)
			}
			got[i].err = err
		})
	}
	wg.Wait()
	for i, spec := range from {
		src, err := got[i].src, got[i].err
		if err == nil {
			o.Note(fmt.Sprintf("cache-from %s: %d records, %d layers", spec, len(src.records), len(src.layers)))
			if cfg := src.memosRaw; cfg != nil {
				s.loadMemos(src, cfg)
			}
			s.sources = append(s.sources, src)
			continue
		}
		if !spec.IgnoreError {
			return nil, fmt.Errorf("%w (add ignore-error=true to the --cache-from to build without it)", err)
		}
		o.Warn(fmt.Sprintf("%v; building without it (ignore-error=true)", err))
	}
	return s, nil
}

// GetStep implements solver.Store: the local entry, else the first remote record.
func (s *Store) GetStep(ctx context.Context, key string) (*cache.Entry, bool, error) {
	if e, ok, err := s.Store.GetStep(ctx, key); ok || err != nil {
		return e, ok, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.hits[key]; ok && !s.refused(h.e) {
		return cloneEntry(h.e), true, nil
	}
	for _, src := range s.sources {
		r, ok := src.records[key]
		if !ok {
			continue
		}
		e := entryOf(key, r)
		if s.refused(e) {
			continue
		}
		s.hits[key] = hit{src: src, e: e}
		if r.kiln.Epoch != nil {
			// An image's clamped layer, not the step's own: never recorded locally.
			return cloneEntry(e), true, nil
		}
		if e.Layer != nil {
			d, _ := v1.NewHash(e.Layer.Digest)
			s.byBlob[d] = append(s.byBlob[d], e)
		} else if _, err := s.Store.PutStepIfAbsent(ctx, e); err != nil {
			return nil, false, err
		}
		return cloneEntry(e), true, nil
	}
	return nil, false, nil
}

func (s *Store) refused(e *cache.Entry) bool {
	if e.Layer == nil {
		return false
	}
	d, err := v1.NewHash(e.Layer.Digest)
	return err != nil || s.bad[d]
}

// entryOf makes the local entry of remote record r. The snapshot name is made here,
// from the key and the layer, never taken from the remote: it is a directory name.
func entryOf(key string, r *record) *cache.Entry {
	now := time.Now().UTC()
	e := &cache.Entry{Key: key, Config: r.kiln.Config, History: r.kiln.History, Created: r.kiln.Created, Used: now}
	if r.layer != nil {
		e.Layer = &cache.Layer{
			Digest: r.layer.Digest.String(), DiffID: r.kiln.DiffID, Size: r.layer.Size,
			MediaType: string(r.layer.MediaType),
		}
		if r.kiln.Snapshot {
			e.Layer.Snapshot = fmt.Sprintf("s-%.40s-r%.16s", safeKey(key), r.layer.Digest.Hex)
		}
	}
	return e
}

// safeKey is key with only hex digits and dashes, for a snapshot name.
func safeKey(key string) string {
	out := make([]byte, 0, len(key))
	for i := 0; i < len(key); i++ {
		if c := key[i]; (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') {
			out = append(out, c)
		}
	}
	return string(out)
}

func cloneEntry(e *cache.Entry) *cache.Entry {
	c := *e
	if e.Layer != nil {
		l := *e.Layer
		c.Layer = &l
	}
	return &c
}

// Origin implements solver.LazyStore.
func (s *Store) Origin(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.hits[key]; ok {
		return h.src.spec.String()
	}
	return ""
}

// StepLayer implements solver.LazyStore: the local blob, else a layer of a remote
// cache fetched when read. A layer of a registry cache may be mounted by a push to
// the same registry without being downloaded.
func (s *Store) StepLayer(l *cache.Layer) (v1.Layer, bool) {
	d, err := v1.NewHash(l.Digest)
	if err != nil {
		return nil, false
	}
	diffID, err := v1.NewHash(l.DiffID)
	if err != nil {
		return nil, false
	}
	mt := types.MediaType(l.MediaType)
	if s.Store.HasBlob(d) {
		return image.StoreLayer(s.Store, d, diffID, l.Size, mt), true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bad[d] {
		return nil, false
	}
	for _, src := range s.sources {
		if _, ok := src.layers[d]; !ok {
			continue
		}
		s.mounted[d] = src
		lz := &lazyLayer{s: s, src: src, digest: d, diffID: diffID, size: l.Size, mediaType: mt}
		return image.MountableFrom(lz, src.be.mountSource()), true
	}
	return nil, false
}

// ensure downloads blob d from src into the local store once, verifying it. A blob
// that does not hash to its name, or that the cache no longer has, is refused for
// the rest of the build and fails with *image.CorruptBlobError, on which kiln build
// builds again: the steps that used it miss then. A download that is a reader's
// stream (stream) is waited for; if its reader gave up before the end, ensure
// downloads the blob itself.
func (s *Store) ensure(src *source, d v1.Hash, size int64) error {
	for {
		s.mu.Lock()
		if s.Store.HasBlob(d) {
			s.mu.Unlock()
			return nil
		}
		f, ok := s.fetches[d]
		if !ok {
			f = &fetch{done: make(chan struct{})}
			s.fetches[d] = f
			go func() {
				defer close(f.done)
				f.err = s.download(src, d, size)
			}()
		}
		s.mu.Unlock()
		select {
		case <-f.done:
			if errors.Is(f.err, errStreamClosed) {
				continue
			}
			return f.err
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

func (s *Store) download(src *source, d v1.Hash, size int64) error {
	start := time.Now()
	got, n, err := s.copyBlob(src, d, size)
	return s.downloaded(src, d, start, got, n, err, false)
}

// downloaded records the end of a download of d that began at start and read n
// bytes hashing to got: on success the blob's entries are recorded locally (the
// local store keeps no entry whose blob it does not have); on failure d is refused
// for the rest of the build. streamed says a reader's stream did the download.
func (s *Store) downloaded(src *source, d v1.Hash, start time.Time, got v1.Hash, n int64, err error, streamed bool) error {
	if err == nil {
		s.mu.Lock()
		s.fetched[d] = n
		delete(s.mounted, d)
		entries := s.byBlob[d]
		s.mu.Unlock()
		for _, e := range entries {
			if _, err := s.Store.PutStepIfAbsent(context.WithoutCancel(s.ctx), e); err != nil {
				return err
			}
		}
		how := ""
		if streamed {
			how = ", kept as the output read it"
		}
		s.note(fmt.Sprintf("downloaded %s (%d bytes) from %s in %.1fs%s", short(d), n, src.spec, time.Since(start).Seconds(), how))
		return nil
	}
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	s.mu.Lock()
	s.bad[d] = true
	s.mu.Unlock()
	s.note(fmt.Sprintf("cache-from %s: blob %s refused: %v; the steps that use it are built again", src.spec, short(d), err))
	return &image.CorruptBlobError{Digest: d, Got: got}
}

// copyBlob streams blob d into the local store, committed only if its bytes hash to
// d and are not longer than the record said.
func (s *Store) copyBlob(src *source, d v1.Hash, size int64) (v1.Hash, int64, error) {
	rc, err := src.be.blob(s.ctx, d)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer rc.Close()
	bw, err := s.newBlobWriter(src)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer bw.Abort()
	n, err := io.Copy(bw, limitBlob(rc, size))
	if err != nil {
		return bw.Digest(), n, fmt.Errorf("download: %w", err)
	}
	return bw.Digest(), n, commitBlob(bw, d, size, n, src.be.verifiesBlobs())
}

// newBlobWriter is a local blob for a download from src: one that does not hash
// what src's reader verifies already.
func (s *Store) newBlobWriter(src *source) (cache.BlobWriter, error) {
	if src.be.verifiesBlobs() {
		return s.Store.NewUnhashedBlobWriter()
	}
	return s.Store.NewBlobWriter()
}

// limitBlob reads at most one byte more than a blob of size should have (all of it
// when size is unknown), so a longer blob is caught without reading all of it.
func limitBlob(r io.Reader, size int64) io.Reader {
	if size > 0 {
		return io.LimitReader(r, size+1)
	}
	return r
}

// commitBlob keeps the n bytes written to bw as blob d if they are size bytes (when
// the record gave one) and hash to d: checked here, or, when verified, by the
// source's reader, whose end the caller has read without an error. An end read
// through limitBlob is the reader's own when n is size: the limit allows one byte
// more.
func commitBlob(bw cache.BlobWriter, d v1.Hash, size, n int64, verified bool) error {
	if size > 0 && n != size {
		return fmt.Errorf("it has %d bytes, the cache said %d", n, size)
	}
	if verified {
		return bw.Commit(d, false)
	}
	if got := bw.Digest(); got != d {
		return fmt.Errorf("its bytes hash to %s", got)
	}
	return bw.Commit(d, true)
}

// Summary says what the build took from the remote caches: downloaded blobs and
// bytes, and the layers it used that never left the remote.
func (s *Store) Summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.hits) == 0 {
		return ""
	}
	var bytes int64
	for _, n := range s.fetched {
		bytes += n
	}
	return fmt.Sprintf("remote cache: %d steps from remote, %d blobs downloaded (%d bytes), %d layers never downloaded (a push to their registry mounts them)",
		len(s.hits), len(s.fetched), bytes, len(s.mounted))
}

func short(d v1.Hash) string { return d.Algorithm + ":" + d.Hex[:min(12, len(d.Hex))] }

// Prefetch starts the downloads of the layers of ls still in a remote cache and does
// not wait: an output about to read every layer (an image tarball) then waits for
// the slowest download instead of their sum. The image's largest layer, when it is
// one of these, is left to the output, which streams it as it downloads
// (lazystream.go): one pass over the biggest blob instead of a download and then a
// copy. When a layer from elsewhere is larger (W5's base layer, streamed from its
// own registry), every remote-cache layer is fetched ahead: the output would
// otherwise wait for a stream of each of them in turn. A failed download fails the
// read of its layer, as it would without Prefetch.
func (s *Store) Prefetch(ls []v1.Layer) {
	var lazy []*lazyLayer
	largest, largestSize := -1, int64(-1)
	for _, l := range ls {
		size, _ := l.Size()
		if ml, ok := l.(*ggcrremote.MountableLayer); ok {
			l = ml.Layer
		}
		lz, ours := l.(*lazyLayer)
		ours = ours && lz.s == s
		if size > largestSize {
			largest, largestSize = -1, size
			if ours {
				largest = len(lazy)
			}
		}
		if ours {
			lazy = append(lazy, lz)
		}
	}
	for i, lz := range lazy {
		if i != largest {
			go func() { _ = s.ensure(lz.src, lz.digest, lz.size) }()
		}
	}
}

package layers

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/fnv"
	"io"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Why gzip layers are written as a series of gzip members.
//
// A gzip file may hold several members back to back (RFC 1952 §2.2); every reader
// (Go's compress/gzip, containerd, Docker, skopeo, podman, zcat) decompresses them as
// one stream. kiln cuts a layer's tar into members of about memberTarget bytes at
// points that depend only on the entries around them, never on how far the stream
// has come, so that a tree with one file changed gives the same members as before
// everywhere but around that file (eStargz cuts per file for the same reason). A
// member's compressed bytes are then a pure function of its uncompressed bytes, the
// codec and the level: the store keeps where each member of its blobs lies
// (MemberSource), and the next layer copies the compressed bytes of every member it
// shares with an earlier one instead of compressing them again. The blob is byte for
// byte what compressing from scratch gives, so a reused member can never make an
// image that a fresh root would not make.
//
// Cut points:
//   - after an entry (header, content and padding), with a probability that grows
//     with the entry's size, size/memberTarget, drawn from a hash of its name: a
//     change to one file moves at most the cut after that file;
//   - inside a regular file's content, every memberPiece bytes from its start, so a
//     big file changed at its end keeps its first members;
//   - when a member reaches memberMax bytes (rare: only a long run of entries none of
//     which drew a cut), which bounds the memory a member takes.
//
// Members are independent, so they are compressed on every core kiln may use, as
// pgzip compressed blocks. The ratio is within a fraction of a percent of one stream
// (each member starts with an empty window).
//
// Sizes: members of 512 KiB on average keep the ratio of 1 MiB pgzip blocks primed
// with a window (members_test.go) and bound what is live at once to a few MiB of
// buffers: under kiln's soft heap limit (48 MiB then), 2 MiB members kept the collector
// running through a whole W2 COPY (cold 5.5 s against 4.4 s).
const (
	memberTarget = 512 << 10
	memberPiece  = 512 << 10
	memberMax    = 1 << 20
)

// memberFormat versions the cut rule, the member encoding and the digest of a
// member's bytes in its key: a change to any must change it, so that no member of
// another rule is ever reused (v3: BLAKE3 for that digest, partsum.go).
const memberFormat = "kiln.layer.gzip-member.v3"

// MemberSource finds the compressed bytes of a gzip member written before, by its
// key (Member.Key): the store implements it over the blobs it holds. It reads them
// into buf (grown if need be, so the writer's buffers are reused and no member
// costs an allocation) and must verify them against sum; the writer checks them
// against the member's own uncompressed bytes too (gzip's CRC-32 and length
// trailer) before it uses them. It is called from several goroutines at once.
type MemberSource interface {
	Member(key string, buf []byte) (compressed []byte, sum PartSum, ok bool)
}

// Member is one gzip member of a written blob.
type Member struct {
	Key    string  `json:"key"`    // digest of memberIdentity: what the member holds and how it was compressed
	Offset int64   `json:"offset"` // where its compressed bytes start in the blob
	Size   int64   `json:"size"`   // its compressed length
	Sum    PartSum `json:"sum"`    // digest of its compressed bytes
}

// memberIdentity is what a member's key is the digest of: its uncompressed bytes,
// the member format and the exact compressor. A plain value, encoded canonically
// (JSON of a struct: fixed field order).
type memberIdentity struct {
	Format string `json:"format"`
	Codec  string `json:"codec"` // the compressor's module and version
	Level  int    `json:"level"`
	Raw    string `json:"raw"` // BLAKE3 of the uncompressed bytes (partsum.go)
}

// gzipCodec names the gzip implementation whose output members hold: another
// version may compress the same bytes differently.
var gzipCodec = sync.OnceValue(func() string {
	const mod = "github.com/klauspost/compress"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == mod {
				if d.Replace != nil {
					d = d.Replace
				}
				return mod + "@" + d.Version + "/gzip"
			}
		}
	}
	return mod + "@unknown/gzip"
})

func memberKey(level int, raw []byte) string {
	b, _ := json.Marshal(memberIdentity{Format: memberFormat, Codec: gzipCodec(), Level: level, Raw: rawSum(raw)})
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

// cutAfter says whether an entry of size bytes (its whole extent in the tar) named
// name ends a member: with probability size/memberTarget, from the name's hash.
func cutAfter(name string, size int64) bool {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	draw := float64(h.Sum64()>>11) / (1 << 53)
	return draw < float64(size)/memberTarget
}

// memberJob is one member on its way through the pipeline.
type memberJob struct {
	raw    []byte
	done   chan struct{}
	comp   []byte
	key    string
	sum    PartSum
	reused bool
	err    error
}

// memberWriter is the gzip codec of a layer: the tar's bytes come in through Write,
// with entry boundaries announced by the layer's tar writer (entry, content); full
// members go to workers that reuse or compress them, and one goroutine writes them
// to out in order.
type memberWriter struct {
	out   io.Writer
	level int
	src   MemberSource

	cur          []byte
	pos          int64 // bytes of tar written so far
	entryName    string
	entryStart   int64
	contentStart int64 // the current regular file's content, [contentStart, contentEnd)
	contentEnd   int64

	work     chan *memberJob
	order    chan *memberJob
	free     chan []byte // raw member buffers
	freeComp chan []byte // compressed member buffers
	wg       sync.WaitGroup
	outWG    sync.WaitGroup

	// diffID hashes the tar, in order, on a goroutine of its own (hashTar): off the
	// producer's path, and beside the output goroutine's hashing and writing of the
	// compressed bytes, which would otherwise wait for it (W2 changed: 228 MB of tar).
	diffID hash.Hash
	tarQ   chan []byte // members' raw bytes, in order, for hashTar

	mu      sync.Mutex
	err     error
	members []Member
	reused  int
	offset  int64
	closed  bool
}

func newMemberWriter(out io.Writer, level int, src MemberSource) (*memberWriter, error) {
	if _, err := gzip.NewWriterLevel(io.Discard, level); err != nil {
		return nil, fmt.Errorf("gzip level %d: %w", level, err)
	}
	workers := gzipBlocks()
	// Members queued for the workers and for the output, each up to 1 MiB raw and
	// compressed: one per worker keeps every worker busy (the producer is ahead of
	// compression), and one more cost W6 3 MB of peak RSS (W2 6 MB) for no time.
	inflight := workers
	m := &memberWriter{
		out: out, level: level, src: src, diffID: sha256.New(),
		work:  make(chan *memberJob, inflight),
		order: make(chan *memberJob, inflight),
		// Every raw buffer that can be in flight at once: the one being filled,
		// the order queue's, the one writeOut holds, tarQ's and the one hashTar
		// hashes. A smaller pool dropped one at every burst and made another
		// (W6: 2 GB of buffers for a 2 GB layer).
		free:     make(chan []byte, inflight+4),
		freeComp: make(chan []byte, inflight+1),
		tarQ:     make(chan []byte, 1),
	}
	for range workers {
		m.wg.Add(1)
		go m.worker()
	}
	m.outWG.Add(2)
	go m.writeOut()
	go m.hashTar()
	return m, nil
}

// buffer and compBuffer take a buffer from their pool: a layer's members cycle
// through a few buffers instead of allocating a new MiB each, which under kiln's
// soft memory limit would be paid in collections. A new one starts small and grows
// to what its members need: a layer of one small file (a RUN that writes a line)
// must not allocate and clear the MiBs a big layer's members take.
func (m *memberWriter) buffer() []byte {
	select {
	case b := <-m.free:
		return b[:0]
	default:
		return make([]byte, 0, bufferStart)
	}
}

func (m *memberWriter) compBuffer() []byte {
	select {
	case b := <-m.freeComp:
		return b[:0]
	default:
		return make([]byte, 0, bufferStart)
	}
}

// bufferStart is the capacity a new member buffer starts with.
const bufferStart = 32 << 10

func (m *memberWriter) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *memberWriter) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = err
	}
}

// Write takes tar bytes, cutting members where a piece of file content or memberMax
// ends.
func (m *memberWriter) Write(p []byte) (int, error) {
	if err := m.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if m.cur == nil {
			m.cur = m.buffer()
		}
		room := int64(memberMax - len(m.cur))
		if m.pos >= m.contentStart && m.pos < m.contentEnd {
			// the next piece boundary of the file's content
			next := m.contentStart + ((m.pos-m.contentStart)/memberPiece+1)*memberPiece
			if next < m.contentEnd {
				room = min(room, next-m.pos)
			}
		}
		k := int(min(int64(len(p)), room))
		if need := len(m.cur) + k; need > cap(m.cur) {
			// Doubled, up to memberMax: append grows a big slice by a quarter
			// at a time, which took 4.5 MiB of allocations to fill a 1 MiB
			// member buffer.
			grown := make([]byte, len(m.cur), min(memberMax, max(need, 2*cap(m.cur))))
			copy(grown, m.cur)
			m.cur = grown
		}
		m.cur = append(m.cur, p[:k]...)
		m.pos += int64(k)
		p = p[k:]
		if int64(k) == room {
			m.cut()
		}
	}
	return n, nil
}

// entry is told before each tar header is written, after the previous entry's
// padding: it ends the previous entry, which may end a member.
func (m *memberWriter) entry(name string) {
	if m.entryName != "" && cutAfter(m.entryName, m.pos-m.entryStart) {
		m.cut()
	}
	m.entryName, m.entryStart = name, m.pos
}

// content is told after a regular file's header: its size bytes of content follow.
func (m *memberWriter) content(size int64) {
	m.contentStart, m.contentEnd = m.pos, m.pos+size
}

// cut sends the current member on.
func (m *memberWriter) cut() {
	if len(m.cur) == 0 {
		return
	}
	j := &memberJob{raw: m.cur, done: make(chan struct{})}
	m.cur = nil // the next Write takes a buffer
	m.order <- j
	m.work <- j
}

func (m *memberWriter) worker() {
	defer m.wg.Done()
	zw, _ := gzip.NewWriterLevel(io.Discard, m.level)
	for j := range m.work {
		j.key = memberKey(m.level, j.raw)
		comp := m.compBuffer()
		if m.src != nil {
			c, sum, ok := m.src.Member(j.key, comp)
			if ok && trailerMatches(c, j.raw) {
				j.comp, j.sum, j.reused = c, sum, true
				close(j.done)
				continue
			}
			if cap(c) > cap(comp) {
				comp = c
			}
		}
		if need := compressBound(len(j.raw)); cap(comp) < need {
			// Grown by the gzip writer instead, a buffer doubles past what
			// the member needs: a 1 MiB member that does not compress would
			// take 2 MiB.
			comp = make([]byte, 0, need)
		}
		buf := bytes.NewBuffer(comp[:0])
		resetGzip(zw, buf)
		if _, err := zw.Write(j.raw); err != nil {
			j.err = err
		} else if err := zw.Close(); err != nil {
			j.err = err
		}
		j.comp = buf.Bytes()
		j.sum = SumPart(j.comp)
		close(j.done)
	}
}

// resetGzip points zw at w with the header every member has: no name, and mtime 0 as
// Go's compress/gzip and BuildKit write it (klauspost's writer would otherwise write
// the zero time.Time as 0x886e0900, a date in 2042).
func resetGzip(zw *gzip.Writer, w io.Writer) {
	zw.Reset(w)
	zw.ModTime = time.Unix(0, 0)
}

// emptyTar is the whole tar of a layer without entries: its end-of-archive marker.
const emptyTar = 1024

// emptyGzipLayer is that tar as BuildKit and Docker compress it (Go's compress/gzip,
// default level): sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1,
// the empty layer registries already hold. A step that changes nothing gets it.
var emptyGzipLayer = []byte{
	0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x62, 0x18, 0x05, 0xa3, 0x60, 0x14,
	0x8c, 0x58, 0x00, 0x08, 0x00, 0x00, 0xff, 0xff, 0x2e, 0xaf, 0xb5, 0xef, 0x00, 0x04, 0x00, 0x00,
}

// compressBound is more than the gzip member of n bytes can take: deflate stores a
// block that does not compress, at 5 bytes a 64 KiB block, and gzip adds 18 bytes.
func compressBound(n int) int { return n + n>>10 + 64 }

// trailerMatches checks a member's gzip framing and its CRC-32 and length trailer
// against the uncompressed bytes it must hold.
func trailerMatches(comp, raw []byte) bool {
	if len(comp) < 18 || comp[0] != 0x1f || comp[1] != 0x8b {
		return false
	}
	t := comp[len(comp)-8:]
	return binary.LittleEndian.Uint32(t) == crc32.ChecksumIEEE(raw) &&
		binary.LittleEndian.Uint32(t[4:]) == uint32(len(raw)&math.MaxUint32)
}

// writeOut writes the members in order and records them; after an error it keeps
// draining, so the producer never blocks. Each member's raw bytes go on to hashTar,
// which returns their buffer to the pool.
func (m *memberWriter) writeOut() {
	defer m.outWG.Done()
	defer close(m.tarQ)
	for j := range m.order {
		<-j.done
		if j.err != nil {
			m.fail(fmt.Errorf("compress: %w", j.err))
		}
		m.tarQ <- j.raw
		if m.failed() == nil {
			if _, err := m.out.Write(j.comp); err != nil {
				m.fail(err)
			} else {
				m.mu.Lock()
				m.members = append(m.members, Member{Key: j.key, Offset: m.offset, Size: int64(len(j.comp)), Sum: j.sum})
				if j.reused {
					m.reused++
				}
				m.offset += int64(len(j.comp))
				m.mu.Unlock()
			}
		}
		select {
		case m.freeComp <- j.comp:
		default:
		}
	}
}

// hashTar adds each member's raw bytes to the diffID, in the order writeOut sends
// them, then returns the buffer to the pool.
func (m *memberWriter) hashTar() {
	defer m.outWG.Done()
	for raw := range m.tarQ {
		if m.failed() == nil {
			m.diffID.Write(raw)
		}
		select {
		case m.free <- raw:
		default:
		}
	}
}

// Close sends the last member and waits for every member to be written.
func (m *memberWriter) Close() error {
	if m.closed {
		return m.failed()
	}
	m.closed = true
	var empty []byte
	if m.failed() == nil {
		if m.pos == emptyTar && len(m.cur) == emptyTar && !slices.ContainsFunc(m.cur, func(b byte) bool { return b != 0 }) {
			// A tar without entries, all in one member not yet cut: written below
			// as BuildKit's empty layer, and recorded as no member (its bytes are
			// not what compressing gives, so no later layer may reuse them).
			empty, m.cur = m.cur, nil
		} else {
			m.cut()
		}
	}
	close(m.work)
	close(m.order)
	m.wg.Wait()
	m.outWG.Wait()
	if err := m.failed(); err != nil {
		return err
	}
	if empty != nil {
		m.diffID.Write(empty)
		_, err := m.out.Write(emptyGzipLayer)
		return err
	}
	if m.offset == 0 {
		// A gzip stream is at least one member, even of nothing.
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, m.level)
		zw.ModTime = time.Unix(0, 0)
		if err := zw.Close(); err != nil {
			return err
		}
		if _, err := m.out.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// result returns the members written and how many were reused.
func (m *memberWriter) result() ([]Member, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members, m.reused
}

// layerTar is the tar writer of a layer: it tells a member codec where entries and
// file contents begin, so members can be cut there.
type layerTar struct {
	*tar.Writer
	members *memberWriter // nil for other codecs
}

// WriteHeader pads the previous entry, marks the boundary, then writes hdr.
func (t *layerTar) WriteHeader(hdr *tar.Header) error {
	if t.members == nil {
		return t.Writer.WriteHeader(hdr)
	}
	if err := t.Writer.Flush(); err != nil {
		return err
	}
	t.members.entry(hdr.Name)
	if err := t.Writer.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		t.members.content(hdr.Size)
	}
	return nil
}

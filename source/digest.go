package source

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// hashWorkers bounds content hashing: sha256 is CPU bound and kiln runs on small
// machines, so two workers, each with its own buffer.
const hashWorkers = 2

// Digest is the content digest of exactly what Copy would copy for opts (paths, types,
// modes, owners, xattrs, link targets, contents; never mtimes). hc may be nil.
//
// Owners are recorded as Copy would write them without --chown: 0:0 for the context,
// the source owner for other stages; --chown and --chmod belong in the caller's cache
// key, not here. On a warm hash cache an unchanged file costs one lstat: its content,
// xattrs and link target are looked up by (dev, inode, size, mtime, ctime, path).
//
// The tree is digested a batch of paths at a time, in walk order, and only each path's
// 32-byte digest outlives its batch: a context of 200,000 files never has all its stat
// results, cache keys and cache answers in memory at once.
func Digest(ctx context.Context, src Source, opts CopyOptions, hc HashCache) (*Sum, error) {
	return digest(ctx, src, opts, hc, walkBatch)
}

// digest is Digest taking the paths batch at a time (tests vary it: the result
// must not depend on it).
func digest(ctx context.Context, src Source, opts CopyOptions, hc HashCache, batch int) (*Sum, error) {
	f, err := newFilters(src, opts)
	if err != nil {
		return nil, err
	}
	f.batch = batch
	d := &digester{src: src, hc: hc, firstLink: map[linkKey]string{}, sum: &Sum{}}
	if opts.Parents {
		// Paths as they land under dest: --parents keeps them, so they are the content.
		entries, err := parentEntries(ctx, src, opts, f)
		if err != nil {
			return nil, err
		}
		for len(entries) > 0 {
			n := min(len(entries), batch)
			if err := d.add(ctx, "", entries[:n], 0); err != nil {
				return nil, err
			}
			entries = entries[n:]
		}
	} else {
		sels, err := selectSources(ctx, src, opts)
		if err != nil {
			return nil, err
		}
		if sels, err = f.dropExcluded(sels); err != nil {
			return nil, err
		}
		// The walk (readdir and lstat, kernel time) of the next batch runs while
		// this one is hashed; batches are still digested one after the other, in
		// walk order.
		type walked struct {
			prefix string
			copier int
			es     []entry
		}
		g, gctx := errgroup.WithContext(ctx)
		batches := make(chan walked, 1)
		g.Go(func() error {
			defer close(batches)
			for _, sel := range sels {
				err := f.walkEach(gctx, sel, func(es []entry) error {
					select {
					case batches <- walked{sel.name, sel.copier, es}:
						return nil
					case <-gctx.Done():
						return context.Cause(gctx)
					}
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		g.Go(func() error {
			for b := range batches {
				if err := d.add(gctx, b.prefix, b.es, b.copier); err != nil {
					return err
				}
			}
			return nil
		})
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	sum := d.sum
	sort.SliceStable(sum.Files, func(i, j int) bool { return sum.Files[i].Path < sum.Files[j].Path })
	h := sha256.New()
	field := make([]byte, 0, len("sha256:")+hex.EncodedLen(sha256.Size))
	for _, f := range sum.Files {
		writeField(h, f.Path)
		field = append(field[:0], "sha256:"...)
		field = hex.AppendEncode(field, f.Sum[:])
		writeField(h, string(field))
	}
	sum.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return sum, nil
}

// digester accumulates the per-path digests of one Digest call.
type digester struct {
	src       Source
	hc        HashCache
	firstLink map[linkKey]string // the first path of each multiply linked inode
	bufs      [hashWorkers][]byte
	sum       *Sum
}

// digestItem is one path of a batch while its data digest is found.
type digestItem struct {
	path, host string
	fi         fs.FileInfo
	data       string
	linkTo     string // a hard link Copy makes to this earlier path
}

// add digests one batch of walked entries, in walk order (the first path of a hard
// link's inode is the one Copy copies; the others become links to it). Each path is
// prefix joined with the entry's rel.
func (d *digester) add(ctx context.Context, prefix string, es []entry, copier int) error {
	items := make([]digestItem, 0, len(es))
	for _, e := range es {
		p := join(prefix, e.rel)
		it := digestItem{path: p, host: e.host, fi: e.fi}
		if st := statOf(e.fi); e.fi.Mode().IsRegular() && st.Nlink > 1 {
			k := linkKey{copier: copier, dev: uint64(st.Dev), ino: st.Ino}
			if first, ok := d.firstLink[k]; ok {
				it.linkTo = first
			} else {
				d.firstLink[k] = p
			}
		}
		items = append(items, it)
	}
	var misses []int
	if d.hc != nil {
		keys := make([]string, len(items))
		for i, it := range items {
			keys[i] = hashKey(it.host, it.fi)
		}
		for i, data := range d.hc.GetMany(keys) {
			items[i].data = data
		}
	}
	for i := range items {
		if items[i].data == "" {
			misses = append(misses, i)
		}
	}
	if err := d.hashMisses(ctx, items, misses); err != nil {
		return err
	}

	var rec []byte
	for _, it := range items {
		uid, gid := 0, 0
		if d.src.Context == nil {
			var err error
			if uid, gid, err = ids(it.host, it.fi); err != nil {
				return fmt.Errorf("owner of %s: %w", it.path, err)
			}
		}
		// The record: type, st_mode bits (octal), uid, gid, data digest.
		rec = append(rec[:0], typeChar(it.fi.Mode()), ' ')
		rec = strconv.AppendUint(rec, uint64(unixMode(it.fi.Mode())), 8)
		rec = append(rec, ' ')
		rec = strconv.AppendInt(rec, int64(uid), 10)
		rec = append(rec, ' ')
		rec = strconv.AppendInt(rec, int64(gid), 10)
		rec = append(rec, ' ')
		rec = append(rec, it.data...)
		if it.linkTo != "" {
			rec = append(rec, " hardlink "...)
			rec = append(rec, it.linkTo...)
		}
		d.sum.Files = append(d.sum.Files, FileSum{Path: it.path, Sum: sha256.Sum256(rec)})
	}
	return nil
}

// hashMisses reads the items the cache did not know on a few workers; each writes
// only its own items, so the result does not depend on scheduling.
func (d *digester) hashMisses(ctx context.Context, items []digestItem, misses []int) error {
	if len(misses) == 0 {
		return nil
	}
	// Workers take the misses one at a time from a shared counter. A channel send
	// per file cost each file a goroutine handoff (futex wakeups): on W2's 20,000
	// files, a fifth of the hashing's wall time. One at a time, not in chunks, so
	// that a few big files still spread over the workers.
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for w := range hashWorkers {
		if d.bufs[w] == nil {
			d.bufs[w] = make([]byte, 128<<10)
		}
		buf := d.bufs[w]
		g.Go(func() error {
			for {
				if err := gctx.Err(); err != nil {
					return err
				}
				n := int(next.Add(1)) - 1
				if n >= len(misses) {
					return nil
				}
				i := misses[n]
				data, err := dataDigest(items[i].host, items[i].fi, buf)
				if err != nil {
					return fmt.Errorf("hash %s: %w", items[i].path, err)
				}
				items[i].data = data
				if d.hc != nil {
					d.hc.Put(hashKey(items[i].host, items[i].fi), data)
				}
			}
		})
	}
	return g.Wait()
}

// typeChar names the file type in a digest record.
func typeChar(m fs.FileMode) byte {
	switch {
	case m.IsDir():
		return 'd'
	case m&fs.ModeSymlink != 0:
		return 'l'
	case m&fs.ModeCharDevice != 0:
		return 'c'
	case m&fs.ModeDevice != 0:
		return 'b'
	case m&fs.ModeNamedPipe != 0:
		return 'p'
	default:
		return 'f'
	}
}

// writeField writes s length-prefixed, so no two field lists hash alike.
func writeField(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	io.WriteString(h, s)
}

// dataDigest is what the HashCache stores for one path: a digest of its content (for a
// regular file), link target, device number, and xattrs. Mode and owner are hashed
// outside it, from the lstat that is done anyway.
func dataDigest(host string, fi fs.FileInfo, buf []byte) (string, error) {
	h := sha256.New()
	m := fi.Mode()
	switch {
	case m.IsRegular():
		ch := sha256.New()
		if !isSocket(fi) { // a socket is an empty file (asCopied)
			if err := hashFile(host, ch, buf, fi.Size()); err != nil {
				return "", err
			}
		}
		writeField(h, "file")
		writeField(h, hex.EncodeToString(ch.Sum(nil)))
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		writeField(h, "link")
		writeField(h, target)
	case m&fs.ModeDevice != 0:
		writeField(h, "dev")
		writeField(h, fmt.Sprint(rdev(fi)))
	default:
		writeField(h, strings.ToLower(fmt.Sprintf("%c", typeChar(m))))
	}
	xs, err := listXattrs(host)
	if err != nil {
		return "", err
	}
	for _, x := range xs {
		writeField(h, "xattr")
		writeField(h, x.name)
		writeField(h, string(x.value))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile writes the content of the regular file at host (not followed if a
// symlink) into h through buf. It reads with plain syscalls: an os.File costs two
// fcntl calls and a failed epoll registration per file, a tenth of the syscalls of
// hashing a context of small files.
//
// size is the file's size as the walk's lstat saw it, the size its hash cache key
// names. A short read that brings the content to exactly that size is taken as its
// end, without the read that would return 0: most context files fit in one read,
// so that saves one of the four or five syscalls a small file costs. A file that grew since the lstat still reads on
// (its first read is not short, or it passes size), one that shrank reads to EOF.
func hashFile(host string, h io.Writer, buf []byte, size int64) error {
	fd, err := unix.Open(host, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open(host, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: host, Err: err}
	}
	defer unix.Close(fd)
	var read int64
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return &fs.PathError{Op: "read", Path: host, Err: err}
		case n == 0:
			return nil
		}
		h.Write(buf[:n])
		read += int64(n)
		if n < len(buf) && read == size {
			return nil
		}
	}
}

package source

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
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
func Digest(ctx context.Context, src Source, opts CopyOptions, hc HashCache) (*Sum, error) {
	f, err := newFilters(src, opts)
	if err != nil {
		return nil, err
	}
	type item struct {
		path, host string
		fi         fs.FileInfo
		key, data  string
		linkTo     string // a hard link Copy makes to this earlier path
	}
	var items []item
	var misses []int
	firstLink := map[linkKey]string{}
	addEntry := func(p string, e entry, source int) {
		it := item{path: p, host: e.host, fi: e.fi}
		if e.fi.Mode()&fs.ModeSocket != 0 {
			return // Copy skips sockets
		}
		if st := statOf(e.fi); e.fi.Mode().IsRegular() && st.Nlink > 1 {
			k := linkKey{source: source, dev: uint64(st.Dev), ino: st.Ino}
			if first, ok := firstLink[k]; ok {
				it.linkTo = first
			} else {
				firstLink[k] = p
			}
		}
		if hc != nil {
			it.key = hashKey(e.host, e.fi)
			if d, ok := hc.Get(it.key); ok {
				it.data = d
			}
		}
		if it.data == "" {
			misses = append(misses, len(items))
		}
		items = append(items, it)
	}
	if opts.Parents {
		// Paths as they land under dest: --parents keeps them, so they are the content.
		entries, err := parentEntries(ctx, src, opts, f)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			addEntry(e.rel, e, 0)
		}
	} else {
		sels, err := selectSources(ctx, src, opts)
		if err != nil {
			return nil, err
		}
		if sels, err = f.dropExcluded(sels); err != nil {
			return nil, err
		}
		for _, sel := range sels {
			entries, err := f.walk(ctx, sel)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				addEntry(join(sel.name, e.rel), e, sel.source)
			}
		}
	}
	// Hash what the cache did not know on a few workers; each writes only its own
	// items, so the result does not depend on scheduling.
	g, gctx := errgroup.WithContext(ctx)
	next := make(chan int)
	for range hashWorkers {
		g.Go(func() error {
			buf := make([]byte, 128<<10)
			for i := range next {
				d, err := dataDigest(items[i].host, items[i].fi, buf)
				if err != nil {
					return fmt.Errorf("hash %s: %w", items[i].path, err)
				}
				items[i].data = d
				if hc != nil {
					hc.Put(items[i].key, d)
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(next)
		for _, i := range misses {
			select {
			case next <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}

	sum := &Sum{Files: make([]FileSum, len(items))}
	var rec []byte
	for i, it := range items {
		uid, gid := 0, 0
		if src.Context == nil {
			var err error
			if uid, gid, err = ids(it.host, it.fi); err != nil {
				return nil, fmt.Errorf("owner of %s: %w", it.path, err)
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
		d := sha256.Sum256(rec)
		sum.Files[i] = FileSum{Path: it.path, Digest: "sha256:" + hex.EncodeToString(d[:])}
	}
	sort.SliceStable(sum.Files, func(i, j int) bool { return sum.Files[i].Path < sum.Files[j].Path })
	h := sha256.New()
	for _, f := range sum.Files {
		writeField(h, f.Path)
		writeField(h, f.Digest)
	}
	sum.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return sum, nil
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
		f, err := os.OpenFile(host, os.O_RDONLY|osNoFollow, 0)
		if err != nil {
			return "", err
		}
		ch := sha256.New()
		// Hide File.WriteTo so CopyBuffer uses this worker's buffer.
		_, err = io.CopyBuffer(ch, struct{ io.Reader }{f}, buf)
		f.Close()
		if err != nil {
			return "", err
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

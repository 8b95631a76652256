package source

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kiln-build/kiln/layers"
)

// Pending collects the regular files of a Copy made with CopyOptions.Pending: instead
// of writing each file into the rootfs, the copy records where its content is and the
// metadata it would have been given, and the caller writes them straight into the
// step's layer (layers.WriteOptions.Pending). Directories, links and nodes are still
// created, so every rule of the copy (destination resolution, replacing, refusing to
// put a directory over a file) sees what it would have seen.
//
// Only for a rootfs that nothing reads before its layer is written: the files are
// absent from it. Its upper dir (destRoot must be an overlay merged dir) holds every
// directory a pending file is in: the copy makes overlay copy up each existing
// directory it puts a file into, as writing the file would have.
//
// A Pending is used by one Copy at a time (its methods run on the copy's goroutine).
//
// It holds every pending file until the layer is written, so it keeps them compactly:
// about 80 bytes a file (a 210,000-file COPY's list is 16 MB, not the 60 it takes as
// full PendingFiles). A file's directory and its source's directory are numbers in
// tables of directories, and its own name is the one string it holds.
type Pending struct {
	root string
	// dirs are the directories of pending files, relative to root and
	// slash-separated ("" for root), numbered in the order first seen; dirIndex
	// numbers them by host path. srcDirs and srcIndex do the same for the host
	// directories the files are read from.
	dirs     []string
	dirIndex map[string]int32
	srcDirs  []string
	srcIndex map[string]int32
	// files are the pending files in the order added, in chunks (no copy of all of
	// them as the list grows); index says where each (directory, name) is. A
	// dropped file's slot stays, with an empty base.
	files [][]pendingFile
	n     int
	index map[pendingKey]int32
	rare  map[int32]*pendingRare // by file number: what few files have
	known map[string]bool        // directories known to be in the upper dir
	// made are the directories this step's copies created: what is in one was put
	// there by them, so a pending file in it needs no lstat to learn whether a
	// directory is in its way (only one of made can be).
	made map[string]bool
}

// pendingFile is one pending file as Pending keeps it: 56 bytes and its name.
type pendingFile struct {
	base   string // its name in its directory; "" once dropped
	dir    int32  // in Pending.dirs
	srcDir int32  // in Pending.srcDirs
	size   int64
	mtime  int64 // ns since the epoch
	mode   uint32
	uid    uint32
	gid    uint32
}

// pendingRare is what a pending file seldom has, kept beside the many that do not.
type pendingRare struct {
	srcBase string // its source's name in its directory, when not base
	xattrs  map[string][]byte
}

type pendingKey struct {
	dir  int32
	base string
}

// pendingChunk is how many files a chunk of Pending.files holds.
const pendingChunk = 1024

// NewPending collects the pending files of copies into the rootfs at root.
func NewPending(root string) *Pending {
	p := &Pending{root: root, known: map[string]bool{}, made: map[string]bool{}}
	p.reset()
	return p
}

func (p *Pending) reset() {
	p.dirs, p.srcDirs, p.files, p.n = nil, nil, nil, 0
	p.dirIndex, p.srcIndex, p.index, p.rare = map[string]int32{}, map[string]int32{}, map[pendingKey]int32{}, map[int32]*pendingRare{}
}

func (p *Pending) file(i int32) *pendingFile { return &p.files[i/pendingChunk][i%pendingChunk] }

// Files returns the pending files as the layer writer takes them, and empties p. The
// list keeps p's compact storage and drops its index: the layer write that follows
// holds the files once.
func (p *Pending) Files() layers.PendingFiles {
	l := &pendingList{dirs: p.dirs, srcDirs: p.srcDirs, files: p.files, rare: p.rare, byDir: map[string][]int32{}}
	var dirs []string
	for i := range int32(p.n) {
		f := p.file(i)
		if f.base == "" {
			continue
		}
		d := p.dirs[f.dir]
		if _, ok := l.byDir[d]; !ok {
			dirs = append(dirs, d)
		}
		l.byDir[d] = append(l.byDir[d], i)
		l.n++
	}
	l.dirNames = dirs
	p.reset()
	return l
}

// pendingList is the PendingFiles of a Pending.
type pendingList struct {
	dirs, srcDirs []string
	files         [][]pendingFile
	rare          map[int32]*pendingRare
	n             int
	dirNames      []string
	byDir         map[string][]int32 // the files of each directory, in the order added
}

func (l *pendingList) Len() int       { return l.n }
func (l *pendingList) Dirs() []string { return l.dirNames }

func (l *pendingList) InDir(dir string) []layers.PendingFile {
	idx := l.byDir[dir]
	out := make([]layers.PendingFile, 0, len(idx))
	for _, i := range idx {
		f := &l.files[i/pendingChunk][i%pendingChunk]
		src, xattrs := f.base, map[string][]byte(nil)
		if r := l.rare[i]; r != nil {
			xattrs = r.xattrs
			if r.srcBase != "" {
				src = r.srcBase
			}
		}
		out = append(out, layers.PendingFile{
			Name:    path.Join(l.dirs[f.dir], f.base),
			Source:  filepath.Join(l.srcDirs[f.srcDir], src),
			Size:    f.size,
			Mode:    f.mode,
			UID:     int(f.uid),
			GID:     int(f.gid),
			ModTime: time.Unix(0, f.mtime),
			Xattrs:  xattrs,
		})
	}
	slices.SortFunc(out, func(a, b layers.PendingFile) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// key is the index key of the file at host, and whether its directory holds any
// pending file (else no file at host is pending).
func (p *Pending) key(host string) (pendingKey, bool) {
	d, ok := p.dirIndex[filepath.Dir(host)]
	return pendingKey{d, filepath.Base(host)}, ok
}

// dirOf numbers the directory dir (a host path) of a pending file, -1 when it is
// not under the rootfs.
func (p *Pending) dirOf(dir string) int32 {
	if d, ok := p.dirIndex[dir]; ok {
		return d
	}
	rel, err := filepath.Rel(p.root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return -1
	}
	if rel == "." {
		rel = ""
	}
	d := int32(len(p.dirs))
	p.dirs = append(p.dirs, filepath.ToSlash(rel))
	p.dirIndex[strings.Clone(dir)] = d
	return d
}

// srcDirOf numbers the host directory a pending file is read from.
func (p *Pending) srcDirOf(dir string) int32 {
	if d, ok := p.srcIndex[dir]; ok {
		return d
	}
	d := int32(len(p.srcDirs))
	dir = strings.Clone(dir)
	p.srcDirs = append(p.srcDirs, dir)
	p.srcIndex[dir] = d
	return d
}

// has reports whether a pending file is at host.
func (p *Pending) has(host string) bool {
	k, ok := p.key(host)
	if !ok {
		return false
	}
	_, ok = p.index[k]
	return ok
}

// drop forgets the pending file at host: something else replaced it.
func (p *Pending) drop(host string) {
	k, ok := p.key(host)
	if !ok {
		return
	}
	if i, ok := p.index[k]; ok {
		*p.file(i) = pendingFile{}
		delete(p.index, k)
		delete(p.rare, i)
	}
}

// dirInUpper notes that dir is in the upper dir already (the copy created it or sets
// its metadata, which copies it up); made says the copy created it.
func (p *Pending) dirInUpper(dir string, made bool) {
	p.known[dir] = true
	if made {
		p.made[dir] = true
	}
}

// add records the file j would have written, by the same rules as copyFile: a
// directory at the destination is an error; a file, link or node there is replaced
// (the layer's entry replaces it; nothing in the rootfs needs to change).
func (p *Pending) add(c *copier, j fileJob) error {
	dstDir := filepath.Dir(j.dst)
	if p.made[dstDir] {
		// Made by this step: the only directory that can be at j.dst is one it
		// made too; files, links and nodes there are replaced.
		if p.made[j.dst] {
			return fmt.Errorf("cannot replace directory %s with a file", j.img)
		}
	} else {
		fi, err := os.Lstat(j.dst)
		switch {
		case err == nil && fi.IsDir():
			return fmt.Errorf("cannot replace directory %s with a file", j.img)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	dir := p.dirOf(dstDir)
	if dir < 0 || j.dst == p.root {
		return fmt.Errorf("internal error: %s is not under the rootfs", j.dst)
	}
	if err := p.copyUp(dstDir); err != nil {
		return fmt.Errorf("copy %s: %w", j.img, err)
	}
	uid, gid, err := c.owner(j.e)
	if err != nil {
		return err
	}
	base := filepath.Base(j.dst)
	k := pendingKey{dir, base}
	i, replace := p.index[k]
	if replace {
		base = p.file(i).base
	} else {
		base = strings.Clone(base) // not the whole j.dst
		k.base = base
	}
	pf := pendingFile{
		base:   base,
		dir:    dir,
		srcDir: p.srcDirOf(filepath.Dir(j.e.host)),
		size:   j.e.fi.Size(),
		mode:   c.mode(j.e.fi),
		uid:    uint32(uid),
		gid:    uint32(gid),
		mtime:  statOf(j.e.fi).Mtim.Nano(),
	}
	var rare pendingRare
	if sb := filepath.Base(j.e.host); sb != base {
		rare.srcBase = strings.Clone(sb)
	}
	if xs, err := listXattrs(j.e.host); err == nil && len(xs) > 0 {
		rare.xattrs = make(map[string][]byte, len(xs))
		for _, x := range xs {
			rare.xattrs[x.name] = x.value
		}
	}
	// A file copied over an earlier pending one replaces it, in its slot.
	if !replace {
		if p.n%pendingChunk == 0 {
			p.files = append(p.files, make([]pendingFile, pendingChunk))
		}
		i = int32(p.n)
		p.n++
		p.index[k] = i
	}
	*p.file(i) = pf
	delete(p.rare, i)
	if rare.srcBase != "" || rare.xattrs != nil {
		p.rare[i] = &rare
	}
	return nil
}

// copyUp makes overlay copy dir up into the upper dir, as creating a file in it
// would: a file created and removed again leaves the copied-up directory with a new
// mtime, exactly what writing the pending file would have left.
func (p *Pending) copyUp(dir string) error {
	if p.known[dir] {
		return nil
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := filepath.Join(dir, ".kiln-pending-"+hex.EncodeToString(b[:]))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|osNoFollow, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	if err := os.Remove(name); err != nil {
		return err
	}
	p.known[dir] = true
	return nil
}

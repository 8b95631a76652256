package source

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
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
// 40 bytes a file, its name in an arena and 16 bytes of index (a 210,000-file COPY's
// list is 11 MB, not the 60 it takes as full PendingFiles). A file's directory, its
// source's directory and its owner are numbers in tables.
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
	// them as the list grows). A dropped file's slot stays, with no name.
	files      [][]pendingFile
	n          int
	names      nameArena
	owners     []pendingOwner
	ownerIndex map[pendingOwner]uint32
	// index finds a file by the hash of its (directory, name); the rare file whose
	// hash another (directory, name) holds already is in collided instead.
	index    map[uint64]int32
	seed     maphash.Seed
	hash     func(pendingKey) uint64 // nil: keyHash's own (tests make every key collide)
	collided map[pendingKey]int32
	rare     map[int32]*pendingRare // by file number: what few files have
	known    map[string]bool        // directories known to be in the upper dir
	// made are the directories this step's copies created: what is in one was put
	// there by them, so a pending file in it needs no lstat to learn whether a
	// directory is in its way (only one of made can be).
	made map[string]bool
}

// pendingFile is one pending file as Pending keeps it: 40 bytes, its name in the
// arena.
type pendingFile struct {
	size    int64
	mtime   int64 // ns since the epoch
	name    nameRef
	dir     int32 // in Pending.dirs
	srcDir  int32 // in Pending.srcDirs
	mode    uint32
	owner   uint32 // in Pending.owners
	nameLen uint8  // of its name in its directory; 0 once dropped
}

type pendingOwner struct{ uid, gid uint32 }

// nameRef is where a name starts in a nameArena: chunk<<16 | offset.
type nameRef uint32

// nameArena holds file names back to back in chunks that never move, one
// allocation per 64 KiB of names instead of one per name. A name is at most
// NAME_MAX (255) bytes, so its length fits the byte pendingFile keeps.
type nameArena struct{ chunks [][]byte }

const nameChunk = 64 << 10

// maxNameChunks is as many chunks as a nameRef can number: 4 GiB of names.
const maxNameChunks = 1 << 16

func (a *nameArena) add(name string) (nameRef, error) {
	last := len(a.chunks) - 1
	if last < 0 || len(a.chunks[last])+len(name) > nameChunk {
		if len(a.chunks) == maxNameChunks {
			// A ref past it would name another file's bytes.
			return 0, fmt.Errorf("more than %d GiB of file names in one step", maxNameChunks*nameChunk>>30)
		}
		a.chunks = append(a.chunks, make([]byte, 0, nameChunk))
		last++
	}
	ref := nameRef(last<<16 | len(a.chunks[last]))
	a.chunks[last] = append(a.chunks[last], name...)
	return ref, nil
}

func (a *nameArena) get(ref nameRef, n uint8) []byte {
	c := a.chunks[ref>>16]
	off := int(ref & 0xffff)
	return c[off : off+int(n)]
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
	p := &Pending{root: root, known: map[string]bool{}, made: map[string]bool{}, seed: maphash.MakeSeed()}
	p.reset()
	return p
}

func (p *Pending) reset() {
	p.dirs, p.srcDirs, p.files, p.n = nil, nil, nil, 0
	p.names, p.owners = nameArena{}, nil
	p.dirIndex, p.srcIndex, p.ownerIndex = map[string]int32{}, map[string]int32{}, map[pendingOwner]uint32{}
	p.index, p.collided, p.rare = map[uint64]int32{}, map[pendingKey]int32{}, map[int32]*pendingRare{}
}

func (p *Pending) file(i int32) *pendingFile { return &p.files[i/pendingChunk][i%pendingChunk] }

// keyHash is the index's hash of a (directory, name). Two keys with one hash are
// told apart by the names they point to (collided), so any hash is correct.
func (p *Pending) keyHash(k pendingKey) uint64 {
	if p.hash != nil {
		return p.hash(k)
	}
	return maphash.String(p.seed, k.base) ^ uint64(uint32(k.dir))*0x9e3779b97f4a7c15
}

// is reports whether file i is the pending file k.
func (p *Pending) is(i int32, k pendingKey) bool {
	f := p.file(i)
	return f.nameLen != 0 && f.dir == k.dir && string(p.names.get(f.name, f.nameLen)) == k.base
}

// lookup finds the pending file k.
func (p *Pending) lookup(k pendingKey) (int32, bool) {
	h := p.keyHash(k)
	if i, ok := p.index[h]; ok && p.is(i, k) {
		return i, true
	}
	i, ok := p.collided[k]
	return i, ok
}

// insert indexes file i as k, which no pending file is.
func (p *Pending) insert(k pendingKey, i int32) {
	h := p.keyHash(k)
	if _, taken := p.index[h]; taken {
		p.collided[pendingKey{k.dir, strings.Clone(k.base)}] = i
		return
	}
	p.index[h] = i
}

// remove drops file i, which is k, from the index.
func (p *Pending) remove(k pendingKey, i int32) {
	h := p.keyHash(k)
	if j, ok := p.index[h]; ok && j == i {
		delete(p.index, h)
		return
	}
	delete(p.collided, k)
}

// ownerOf numbers an owner.
func (p *Pending) ownerOf(uid, gid int) uint32 {
	o := pendingOwner{uint32(uid), uint32(gid)}
	if n, ok := p.ownerIndex[o]; ok {
		return n
	}
	n := uint32(len(p.owners))
	p.owners = append(p.owners, o)
	p.ownerIndex[o] = n
	return n
}

// Files returns the pending files as the layer writer takes them, and empties p. The
// list keeps p's compact storage and drops its index: the layer write that follows
// holds the files once.
func (p *Pending) Files() layers.PendingFiles {
	l := &pendingList{dirs: p.dirs, srcDirs: p.srcDirs, files: p.files, names: p.names, owners: p.owners, rare: p.rare, byDir: map[string][]int32{}}
	var dirs []string
	for i := range int32(p.n) {
		f := p.file(i)
		if f.nameLen == 0 {
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
	names         nameArena
	owners        []pendingOwner
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
		base := string(l.names.get(f.name, f.nameLen))
		src, xattrs := base, map[string][]byte(nil)
		owner := l.owners[f.owner]
		if r := l.rare[i]; r != nil {
			xattrs = r.xattrs
			if r.srcBase != "" {
				src = r.srcBase
			}
		}
		out = append(out, layers.PendingFile{
			Name:    path.Join(l.dirs[f.dir], base),
			Source:  filepath.Join(l.srcDirs[f.srcDir], src),
			Size:    f.size,
			Mode:    f.mode,
			UID:     int(owner.uid),
			GID:     int(owner.gid),
			ModTime: time.Unix(0, f.mtime),
			Xattrs:  xattrs,
		})
	}
	slices.SortFunc(out, func(a, b layers.PendingFile) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// whiteoutName says whether the file at host is named ".wh.*". Such a file is copied,
// not left pending: the layer writer turns it into the whiteout every reader takes it
// for, in the tree (layers.WriteOptions.NormalizeTree), which a pending file is not in.
func whiteoutName(host string) bool {
	return strings.HasPrefix(filepath.Base(host), ".wh.")
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
	_, ok = p.lookup(k)
	return ok
}

// drop forgets the pending file at host: something else replaced it.
func (p *Pending) drop(host string) {
	k, ok := p.key(host)
	if !ok {
		return
	}
	if i, ok := p.lookup(k); ok {
		p.remove(k, i)
		*p.file(i) = pendingFile{}
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
	if len(base) > 255 {
		return fmt.Errorf("copy %s: file name longer than 255 bytes", j.img)
	}
	k := pendingKey{dir, base}
	i, replace := p.lookup(k)
	pf := pendingFile{
		dir:     dir,
		srcDir:  p.srcDirOf(filepath.Dir(j.e.host)),
		size:    j.e.fi.Size(),
		mode:    c.mode(j.e.fi),
		owner:   p.ownerOf(uid, gid),
		mtime:   statOf(j.e.fi).Mtim.Nano(),
		nameLen: uint8(len(base)),
	}
	if replace {
		pf.name = p.file(i).name // the same name, kept where it is
	} else if pf.name, err = p.names.add(base); err != nil {
		return fmt.Errorf("copy %s: %w", j.img, err)
	}
	var rare pendingRare
	if sb := filepath.Base(j.e.host); sb != base {
		rare.srcBase = strings.Clone(sb)
	}
	xs := j.e.xattrs
	if !j.e.listed {
		xs, _ = listXattrs(j.e.host)
	}
	if len(xs) > 0 {
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
		p.insert(k, i)
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

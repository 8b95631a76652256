package source

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
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
type Pending struct {
	root string
	// files are the pending files in the order added, and index says where each
	// name's is (a big COPY has 100,000s: one struct each, no pointer per file and
	// no second key string). A dropped file's slot stays, with an empty Name.
	files []layers.PendingFile
	index map[string]int
	known map[string]bool // directories known to be in the upper dir
	// made are the directories this step's copies created: what is in one was put
	// there by them, so a pending file in it needs no lstat to learn whether a
	// directory is in its way (only one of made can be).
	made map[string]bool
}

// NewPending collects the pending files of copies into the rootfs at root.
func NewPending(root string) *Pending {
	return &Pending{root: root, index: map[string]int{}, known: map[string]bool{}, made: map[string]bool{}}
}

// Files lists the pending files, sorted by name, and empties p. The list is p's own
// slice, sorted in place: the layer write that follows holds one copy of the files
// and not the index.
func (p *Pending) Files() []layers.PendingFile {
	out := slices.DeleteFunc(p.files, func(f layers.PendingFile) bool { return f.Name == "" })
	p.files, p.index = nil, map[string]int{}
	slices.SortFunc(out, func(a, b layers.PendingFile) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// name is the pending-file name of host, a path under the rootfs ("" if it is not).
func (p *Pending) name(host string) string {
	rel, err := filepath.Rel(p.root, host)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return ""
	}
	return filepath.ToSlash(rel)
}

// has reports whether a pending file is at host.
func (p *Pending) has(host string) bool {
	_, ok := p.index[p.name(host)]
	return ok
}

// drop forgets the pending file at host: something else replaced it.
func (p *Pending) drop(host string) {
	name := p.name(host)
	if i, ok := p.index[name]; ok {
		p.files[i] = layers.PendingFile{}
		delete(p.index, name)
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
	if p.made[filepath.Dir(j.dst)] {
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
	name := p.name(j.dst)
	if name == "" {
		return fmt.Errorf("internal error: %s is not under the rootfs", j.dst)
	}
	if err := p.copyUp(filepath.Dir(j.dst)); err != nil {
		return fmt.Errorf("copy %s: %w", j.img, err)
	}
	uid, gid, err := c.owner(j.e)
	if err != nil {
		return err
	}
	pf := layers.PendingFile{
		Name:    name,
		Source:  j.e.host,
		Size:    j.e.fi.Size(),
		Mode:    c.mode(j.e.fi),
		UID:     uid,
		GID:     gid,
		ModTime: time.Unix(0, statOf(j.e.fi).Mtim.Nano()),
	}
	if xs, err := listXattrs(j.e.host); err == nil && len(xs) > 0 {
		pf.Xattrs = make(map[string][]byte, len(xs))
		for _, x := range xs {
			pf.Xattrs[x.name] = x.value
		}
	}
	// A file copied over an earlier pending one replaces it, in its slot.
	if i, ok := p.index[name]; ok {
		p.files[i] = pf
		return nil
	}
	p.index[name] = len(p.files)
	p.files = append(p.files, pf)
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

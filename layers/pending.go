package layers

import (
	"path"
	"slices"
	"strings"
)

// PendingFiles are the pending files of a layer, handed to the writer a directory
// at a time as its walk of the upper dir reaches each: a big COPY has 100,000s of
// them, and their owner keeps them compactly (source.Pending), so the writer never
// holds more than one directory's in full.
type PendingFiles interface {
	// Len is how many files there are in all.
	Len() int
	// Dirs are the directories that hold pending files, each once: slash-separated
	// and relative to the upper dir, "" for the upper dir itself.
	Dirs() []string
	// InDir returns the files of dir (one of Dirs), sorted by name.
	InDir(dir string) []PendingFile
}

// PendingSlice gives files as PendingFiles (a small list, or a test's).
func PendingSlice(files []PendingFile) PendingFiles {
	s := pendingSlice{byDir: map[string][]PendingFile{}}
	for _, f := range files {
		dir := pendingDir(f.Name)
		if _, ok := s.byDir[dir]; !ok {
			s.dirs = append(s.dirs, dir)
		}
		s.byDir[dir] = append(s.byDir[dir], f)
		s.n++
	}
	for _, fs := range s.byDir {
		slices.SortStableFunc(fs, func(a, b PendingFile) int { return strings.Compare(a.Name, b.Name) })
	}
	return s
}

type pendingSlice struct {
	n     int
	dirs  []string
	byDir map[string][]PendingFile
}

func (s pendingSlice) Len() int                       { return s.n }
func (s pendingSlice) Dirs() []string                 { return s.dirs }
func (s pendingSlice) InDir(dir string) []PendingFile { return s.byDir[dir] }

// pendingDir is the directory of a pending file's name as Dirs names it.
func pendingDir(name string) string {
	if d := path.Dir(name); d != "." {
		return d
	}
	return ""
}

// cleanRel reports whether p is a clean relative path below the upper dir.
func cleanRel(p string) bool {
	return p != "" && p == path.Clean(p) && !path.IsAbs(p) && p != "." && p != ".." && !strings.HasPrefix(p, "../")
}

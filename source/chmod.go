package source

import (
	"fmt"
	"io/fs"
	"strconv"

	mode "github.com/tonistiigi/dchapes-mode"
)

// Chmod is COPY --chmod. An octal mode replaces the mode of every copied entry and
// of the directories the copy creates. A symbolic one (chmod(1) syntax: u+x,go-w,
// a+X, with umask 0) is applied to each copied entry's own mode, X by whether the
// entry is a directory; the directories the copy creates keep 0755. That is
// BuildKit v0.32, measured with buildctl (see TestCopyChmodSymbolic).
type Chmod struct {
	spec  string // canonical: octal without leading zeros, or the symbolic mode as written
	octal bool
	perm  uint32 // the octal mode as st_mode bits
	set   mode.Set
}

// ParseChmod parses a --chmod value.
func ParseChmod(s string) (*Chmod, error) {
	if m, err := strconv.ParseUint(s, 8, 32); err == nil {
		if m > 0o7777 {
			return nil, fmt.Errorf("mode %s is more than 7777", s)
		}
		return &Chmod{spec: strconv.FormatUint(m, 8), octal: true, perm: uint32(m)}, nil
	}
	set, err := mode.Parse(s)
	if err != nil || s == "" {
		return nil, fmt.Errorf("%q is neither an octal mode like 0755 nor a symbolic one like u+x,go-w", s)
	}
	return &Chmod{spec: s, set: set}, nil
}

// String is the mode in the form a cache key records: "755" and "0755" are one.
func (c *Chmod) String() string { return c.spec }

// Octal says whether the mode is octal.
func (c *Chmod) Octal() bool { return c.octal }

// apply is the st_mode permission bits an entry whose bits are old gets.
func (c *Chmod) apply(old uint32, isDir bool) uint32 {
	if c.octal {
		return c.perm
	}
	fm := fileModeOf(old)
	if isDir {
		fm |= fs.ModeDir
	}
	return unixMode(c.set.Apply(fm))
}

// createdDir is the mode of a directory the copy creates.
func (c *Chmod) createdDir() uint32 {
	if c.octal {
		return c.perm
	}
	return 0o755
}

// fileModeOf is unixMode's inverse.
func fileModeOf(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

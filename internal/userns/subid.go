package userns

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Range is a run of subordinate ids of /etc/subuid or /etc/subgid.
type Range struct {
	Start, Count uint32
}

// IDMap is one line of a uid_map or gid_map: Size ids from ContainerID inside the
// namespace are HostID.. outside it.
type IDMap struct {
	ContainerID, HostID, Size uint32
}

// ParseSubIDs returns the ranges of /etc/subuid-format r ("owner:start:count" lines)
// that belong to the user called name or numbered id, in file order, as shadow's
// newuidmap reads them. Malformed lines are errors that name the line.
func ParseSubIDs(r io.Reader, name string, id uint32) ([]Range, error) {
	var out []Range
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d %q: want owner:start:count", n, line)
		}
		if f[0] != name && f[0] != strconv.FormatUint(uint64(id), 10) {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			return nil, fmt.Errorf("line %d %q: start and count must be numbers, count > 0", n, line)
		}
		out = append(out, Range{Start: uint32(start), Count: uint32(count)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// UserMap is the map of a rootless namespace: 0 is id (the user), and 1.. are the
// subordinate ranges one after another.
func UserMap(id uint32, ranges []Range) []IDMap {
	m := []IDMap{{ContainerID: 0, HostID: id, Size: 1}}
	next := uint32(1)
	for _, r := range ranges {
		m = append(m, IDMap{ContainerID: next, HostID: r.Start, Size: r.Count})
		next += r.Count
	}
	return m
}

// ParseIDMap parses the text of /proc/PID/uid_map or gid_map.
func ParseIDMap(text string) ([]IDMap, error) {
	var out []IDMap
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %q: want three numbers", line)
		}
		var v [3]uint32
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %q: %w", line, err)
			}
			v[i] = uint32(n)
		}
		out = append(out, IDMap{ContainerID: v[0], HostID: v[1], Size: v[2]})
	}
	return out, nil
}

// Size is how many ids m maps.
func Size(m []IDMap) uint64 {
	var n uint64
	for _, e := range m {
		n += uint64(e.Size)
	}
	return n
}

// Maps reports whether id (inside) is mapped by m.
func Maps(m []IDMap, id uint32) bool {
	for _, e := range m {
		if id >= e.ContainerID && uint64(id) < uint64(e.ContainerID)+uint64(e.Size) {
			return true
		}
	}
	return false
}

// helperArgs are newuidmap's or newgidmap's arguments after the pid.
func helperArgs(m []IDMap) []string {
	var a []string
	for _, e := range m {
		a = append(a, strconv.FormatUint(uint64(e.ContainerID), 10), strconv.FormatUint(uint64(e.HostID), 10), strconv.FormatUint(uint64(e.Size), 10))
	}
	return a
}

// Describe renders m for the progress: "0→1000, 1-65536→100000-165535".
func Describe(m []IDMap) string {
	var parts []string
	for _, e := range m {
		if e.Size == 1 {
			parts = append(parts, fmt.Sprintf("%d→%d", e.ContainerID, e.HostID))
			continue
		}
		parts = append(parts, fmt.Sprintf("%d-%d→%d-%d", e.ContainerID, uint64(e.ContainerID)+uint64(e.Size)-1, e.HostID, uint64(e.HostID)+uint64(e.Size)-1))
	}
	return strings.Join(parts, ", ")
}

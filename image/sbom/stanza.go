package sbom

import (
	"bufio"
	"bytes"
	"strings"
)

// stanza is one paragraph of an RFC 822-style control file (dpkg's status, Python's
// METADATA and PKG-INFO): field names folded to lower case, the value of a field
// that is continued on following lines joined with "\n". A repeated field keeps its
// first value.
type stanza map[string]string

// parseStanzas splits data into its blank-line-separated stanzas. It never fails: a
// line that is neither a field nor a continuation is ignored, as dpkg's own parser
// would refuse the file but a scanner should still report what it can.
func parseStanzas(data []byte, max int) []stanza {
	var out []stanza
	cur := stanza{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), len(data)+1)
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
			cur = stanza{}
		}
		last = ""
	}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(line) == "":
			flush()
			if max > 0 && len(out) >= max {
				return out
			}
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				cur[last] += "\n" + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				last = ""
				continue
			}
			k = strings.ToLower(strings.TrimSpace(k))
			if _, dup := cur[k]; dup {
				last = ""
				continue
			}
			cur[k] = strings.TrimSpace(v)
			last = k
		}
	}
	flush()
	return out
}

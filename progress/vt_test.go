package progress

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// vt is a small terminal for tests: a screen of rows × cols with a scrollback, the
// cursor, autowrap, and the escape sequences the live view uses (cursor up, erase to
// end of line, erase below). Anything else it is sent is a test failure: the view
// must not rely on more.
type vt struct {
	cols, rows int
	screen     [][]rune
	history    []string // lines scrolled off the top
	x, y       int
	pendWrap   bool
	unknown    []string
}

func newVT(cols, rows int) *vt {
	t := &vt{cols: cols, rows: rows}
	for range rows {
		t.screen = append(t.screen, t.blank())
	}
	return t
}

func (t *vt) blank() []rune { return []rune(strings.Repeat(" ", t.cols)) }

func (t *vt) Write(p []byte) (int, error) {
	s := string(p)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b && i+1 < len(s) && s[i+1] == '[':
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			t.csi(s[i+2:j], s[j])
			i = j + 1
			continue
		case c == '\r':
			t.x, t.pendWrap = 0, false
		case c == '\n':
			t.newline()
		case c < 0x20:
			t.unknown = append(t.unknown, strconv.Quote(string(c)))
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			t.put(r)
			i += size
			continue
		}
		i++
	}
	return len(p), nil
}

func (t *vt) newline() {
	t.pendWrap = false
	t.x = 0
	if t.y == t.rows-1 {
		t.history = append(t.history, strings.TrimRight(string(t.screen[0]), " "))
		t.screen = append(t.screen[1:], t.blank())
		return
	}
	t.y++
}

func (t *vt) put(r rune) {
	if t.pendWrap {
		t.newline()
	}
	t.screen[t.y][t.x] = r
	if t.x == t.cols-1 {
		t.pendWrap = true
		return
	}
	t.x++
}

func (t *vt) csi(params string, final byte) {
	n := 1
	if params != "" {
		if v, err := strconv.Atoi(params); err == nil {
			n = v
		}
	}
	t.pendWrap = false
	switch final {
	case 'A':
		t.y = max(0, t.y-n)
	case 'K':
		for x := t.x; x < t.cols; x++ {
			t.screen[t.y][x] = ' '
		}
	case 'J':
		for x := t.x; x < t.cols; x++ {
			t.screen[t.y][x] = ' '
		}
		for y := t.y + 1; y < t.rows; y++ {
			t.screen[y] = t.blank()
		}
	default:
		t.unknown = append(t.unknown, "CSI "+params+string(final))
	}
}

// lines is the scrollback and the screen, trailing blanks cut.
func (t *vt) lines() []string {
	out := append([]string(nil), t.history...)
	for _, r := range t.screen {
		out = append(out, strings.TrimRight(string(r), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// resize changes the width as terminals that reflow do (tmux, VTE, kitty): a row
// whose text no longer fits continues on the rows below it, and the cursor stays
// below the text it was below.
func (t *vt) resize(cols int) {
	var rows [][]rune
	newY := 0
	for y, r := range t.screen {
		if y == t.y {
			newY = len(rows)
		}
		text := []rune(strings.TrimRight(string(r), " "))
		for len(text) > cols {
			rows = append(rows, text[:cols])
			text = text[cols:]
		}
		rows = append(rows, text)
	}
	t.cols = cols
	// Blank rows below the cursor are dropped before anything scrolls off the top.
	for len(rows) > t.rows && len(rows)-1 > newY && len(rows[len(rows)-1]) == 0 {
		rows = rows[:len(rows)-1]
	}
	for len(rows) > t.rows {
		t.history = append(t.history, string(rows[0]))
		rows = rows[1:]
		newY--
	}
	t.screen = nil
	for _, r := range rows {
		t.screen = append(t.screen, append(r, []rune(strings.Repeat(" ", cols-len(r)))...))
	}
	for len(t.screen) < t.rows {
		t.screen = append(t.screen, t.blank())
	}
	t.y = max(0, newY)
	t.x = min(t.x, cols-1)
}

package parser

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Error is a Dockerfile error that names the file and line.
// Error() reads like "Dockerfile:7: unknown instruction: COPPY".
type Error struct {
	File string
	Line int // 1-based; 0 when the error is about the whole file
	Msg  string
	Src  string // the offending line's text, shown under the message when non-empty
	Err  error  // the underlying cause (often a buildkit error), for errors.Is/As
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// source is the Dockerfile text kept for error reporting.
type source struct {
	file  string
	lines []string
}

func newSource(file string, dt []byte) *source {
	return &source{file: file, lines: strings.Split(string(dt), "\n")}
}

// line returns the text of 1-based line n, "" when out of range.
func (s *source) line(n int) string {
	if n < 1 || n > len(s.lines) {
		return ""
	}
	return printable(strings.TrimRight(s.lines[n-1], "\r"))
}

// errorf makes an *Error at line n.
func (s *source) errorf(n int, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{File: s.file, Line: n, Msg: msg, Src: s.line(n), Err: errors.New(msg)}
}

// wrap turns err into an *Error. The line comes from buildkit's LocationError when
// it carries one, else fallback. An *Error passes through unchanged.
func (s *source) wrap(err error, fallback int) *Error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	n := fallback
	var le *bkparser.LocationError
	if errors.As(err, &le) {
		if l := firstLine(le.Locations); l > 0 {
			n = l
		}
	}
	return &Error{File: s.file, Line: n, Msg: cleanMessage(err), Src: s.line(n), Err: err}
}

// firstLine is the smallest positive start line among buildkit's ranges.
func firstLine(locs [][]bkparser.Range) int {
	best := 0
	for _, rs := range locs {
		for _, r := range rs {
			if l := r.Start.Line; l > 0 && (best == 0 || l < best) {
				best = l
			}
		}
	}
	return best
}

// cleanMessage drops buildkit's "dockerfile parse error on line N: " prefix: the
// *Error already names the line, and saying it twice reads badly.
func cleanMessage(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "dockerfile parse error on line "); ok {
		if _, after, found := strings.Cut(rest, ": "); found {
			msg = after
		}
	}
	return printable(msg)
}

// printable keeps binary garbage from a broken Dockerfile out of terminal output:
// invalid UTF-8 and control characters (but tabs) become U+FFFD.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r != '\t' && unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

// lineOf returns the first line of a buildkit location, 0 if none.
func lineOf(loc []bkparser.Range) int {
	return firstLine([][]bkparser.Range{loc})
}

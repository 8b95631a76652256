package progress

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// plain writes events as lines in the shape of BuildKit's --progress=plain, so people
// and scripts that read buildx's logs read kiln's:
//
//	#3 [stage-0 2/4] RUN make
//	#3 0.412 cc -o app main.c
//	#3 DONE 0.5s
//
//	#4 exporting to oci image format
//	#4 exporting manifest sha256:… done
//	#4 DONE 0.1s
//
// Numbers are given in the order steps are first shown, so they are contiguous; a
// blank line separates blocks; a block left for another before its step ended says
// "#N ..." and its header is repeated when it goes on.
type plain struct {
	w        io.Writer
	now      func() time.Time
	next     int
	current  *vertex
	notFirst bool
	inZero   bool // the last lines were "#0" ones
}

// header makes v the current block, opening it with its number and name.
func (p *plain) header(v *vertex) {
	if v.index == 0 {
		p.next++
		v.index = p.next
	}
	if v == p.current {
		return
	}
	p.inZero = false
	if c := p.current; c != nil {
		p.flush(c)
		fmt.Fprintf(p.w, "#%d ...\n", c.index)
	}
	if p.notFirst {
		fmt.Fprintln(p.w)
	}
	p.notFirst = true
	fmt.Fprintf(p.w, "#%d %s\n", v.index, v.name)
	p.current = v
}

// leave closes the current block (for a line that belongs to no step).
func (p *plain) leave() {
	if c := p.current; c != nil {
		p.flush(c)
		fmt.Fprintf(p.w, "#%d ...\n", c.index)
		p.current = nil
	}
}

func (p *plain) vertex(v *vertex) {
	p.header(v)
	if !v.done() {
		return
	}
	p.flush(v)
	switch {
	case v.canceled:
		fmt.Fprintf(p.w, "#%d CANCELED\n", v.index)
	case v.err != "":
		fmt.Fprintf(p.w, "#%d ERROR: %s\n", v.index, v.err)
	case v.cached:
		fmt.Fprintf(p.w, "#%d CACHED\n", v.index)
	default:
		fmt.Fprintf(p.w, "#%d DONE %.1fs\n", v.index, v.completed.Sub(v.started).Seconds())
	}
	p.current = nil
}

// log prints each complete line of output with the seconds since its step started;
// a line not yet ended waits for the rest.
func (p *plain) log(v *vertex, _ int, data []byte, at time.Time) {
	p.header(v)
	buf := append(v.partial, data...)
	since := at.Sub(v.started).Seconds()
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "#%d %.3f %s\n", v.index, since, buf[:i])
		buf = buf[i+1:]
	}
	v.partial = append(v.partial[:0], buf...)
}

// flush prints v's unended output line, if any.
func (p *plain) flush(v *vertex) {
	if len(v.partial) > 0 {
		fmt.Fprintf(p.w, "#%d %.3f %s\n", v.index, p.now().Sub(v.started).Seconds(), v.partial)
		v.partial = v.partial[:0]
	}
}

func (p *plain) note(v *vertex, msg string, _ time.Time) {
	p.header(v)
	fmt.Fprintf(p.w, "#%d %s\n", v.index, msg)
}

func (p *plain) status(v *vertex, s *status) {
	p.header(v)
	tm := ""
	if d := s.completed.Sub(s.started).Seconds(); d > 0.01 {
		tm = fmt.Sprintf(" %.1fs", d)
	}
	fmt.Fprintf(p.w, "#%d %s%s done\n", v.index, s.id, tm)
}

// info is a line of the build as a whole: BuildKit's "#0" lines.
func (p *plain) info(msg string, _ time.Time) {
	p.leave()
	if p.notFirst && !p.inZero {
		fmt.Fprintln(p.w)
	}
	p.notFirst, p.inZero = true, true
	fmt.Fprintf(p.w, "#0 %s\n", msg)
}

func (p *plain) warn(msg string) {
	p.leave()
	fmt.Fprintf(p.w, "WARNING: %s\n", msg)
}

func (p *plain) close() {
	if p.current != nil {
		p.flush(p.current)
	}
}

// errorLogs is where the failed steps' last output goes after the progress.
func (x *plain) errorLogs() io.Writer { return x.w }

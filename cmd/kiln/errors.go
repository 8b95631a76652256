package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"

	"github.com/agext/levenshtein"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/parser"
)

// dockerfileError is a build's error with the Dockerfile it came from, so that it
// can be shown with an excerpt of the lines it names.
type dockerfileError struct {
	err  error
	file string
	data []byte
}

func (e *dockerfileError) Error() string { return e.err.Error() }
func (e *dockerfileError) Unwrap() error { return e.err }

// withDockerfile attaches the Dockerfile to err (nil stays nil).
func withDockerfile(err error, file string, data []byte) error {
	if err == nil {
		return nil
	}
	return &dockerfileError{err: err, file: file, data: data}
}

// printError writes err as buildx does: for an error at a Dockerfile line, the file
// and line, an excerpt with the line marked, then the message (the location said
// once, above it):
//
//	Dockerfile:2
//	--------------------
//	   1 |     FROM busybox
//	   2 | >>> RUN false
//	--------------------
//	ERROR: process "/bin/sh -c false" did not complete successfully: exit code: 1
func printError(w io.Writer, err error) {
	defer printHint(w, err)
	var perr *parser.Error
	var src *dockerfileError
	if errors.As(err, &perr) && perr.Line > 0 && errors.As(err, &src) {
		lines := strings.Split(string(src.data), "\n")
		if perr.Line <= len(lines) {
			printExcerpt(w, perr.File, lines, perr.Line)
			msg := err.Error()
			if err == error(src) && src.err == error(perr) {
				msg = perr.Msg // the location is said above
			}
			fmt.Fprintln(w, "ERROR:", msg)
			return
		}
	}
	fmt.Fprintln(w, "ERROR:", err)
	if perr != nil && perr.Src != "" {
		fmt.Fprintf(w, "%5d | %s\n", perr.Line, perr.Src)
	}
}

// printHint says what to do next about an error whose cause the message alone does
// not make plain: a full filesystem (the store's or the output's).
func printHint(w io.Writer, err error) {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		fmt.Fprintln(w, "HINT: the filesystem of the path above is full. Free space there; for kiln's own store, `kiln du` shows what the cache takes and `kiln prune` (--keep-storage SIZE, --filter until=DURATION) removes the least recently used")
	}
}

// printExcerpt shows line n of a Dockerfile with the lines around it, as BuildKit's
// errdefs.Source prints them: up to two lines before and after.
func printExcerpt(w io.Writer, file string, lines []string, n int) {
	start, end := n, n
	for p := 0; p < 4; p++ {
		if start > 1 {
			start--
			p++
		}
		if end < len(lines) {
			end++
			p++
		}
	}
	fmt.Fprintf(w, "%s:%d\n--------------------\n", file, n)
	for i := start; i <= end; i++ {
		mark := "   "
		if i == n {
			mark = ">>>"
		}
		fmt.Fprintf(w, " %3d | %s %s\n", i, mark, strings.TrimRight(lines[i-1], "\r"))
	}
	fmt.Fprintln(w, "--------------------")
}

// flagError adds to an unknown flag the flags it may have meant, as cobra does for
// a misspelled command.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	name, ok := strings.CutPrefix(msg, "unknown flag: --")
	if !ok {
		return err
	}
	type cand struct {
		name string
		dist int
	}
	var cands []cand
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := levenshtein.Distance(name, f.Name, nil)
		if d <= 2 || strings.HasPrefix(f.Name, name) {
			cands = append(cands, cand{f.Name, d})
		}
	})
	if len(cands) == 0 {
		return fmt.Errorf("%w (see kiln %s --help)", err, cmd.Name())
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].dist != cands[j].dist {
			return cands[i].dist < cands[j].dist
		}
		return cands[i].name < cands[j].name
	})
	var names []string
	for _, c := range cands[:min(len(cands), 3)] {
		names = append(names, "--"+c.name)
	}
	return fmt.Errorf("%w\n\nDid you mean this?\n\t%s", err, strings.Join(names, "\n\t"))
}

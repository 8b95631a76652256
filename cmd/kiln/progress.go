package main

import (
	"io"
	"runtime"

	kprogress "github.com/kiln-build/kiln/progress"
)

// progress is the build's progress printer (package progress renders it).
type progress = kprogress.Printer

// progressMode is --progress resolved for stderr: tty, plain, rawjson or quiet. An
// invalid value is refused earlier, by checkProgressFlag.
func (o buildOptions) progressMode(stderr io.Writer) string {
	m, err := kprogress.ParseMode(o.progress)
	if err != nil {
		return string(kprogress.Plain)
	}
	return string(m.Resolve(stderr))
}

func (o buildOptions) checkProgressFlag() error {
	_, err := kprogress.ParseMode(o.progress)
	return err
}

func newProgress(mode string, w io.Writer) *progress {
	return kprogress.New(kprogress.Mode(mode), w, kprogress.Options{})
}

func isTerminal(w io.Writer) bool { return kprogress.IsTerminal(w) }

func hostArch() string { return runtime.GOARCH }

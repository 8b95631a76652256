//go:build !linux

package layers

import (
	"context"
	"errors"
	"io"
)

// errNotLinux: whiteouts, xattrs and device nodes are Linux notions.
var errNotLinux = errors.New("layers: only supported on Linux")

func writeLayer(context.Context, string, io.Writer, WriteOptions, bool) (Blob, bool, error) {
	return Blob{}, false, errNotLinux
}

func unpack(context.Context, io.Reader, string, UnpackOptions) error { return errNotLinux }

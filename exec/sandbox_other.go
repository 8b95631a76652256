//go:build !linux

package exec

import (
	"context"
	"errors"
)

var errNotLinux = errors.New("exec: RUN steps need Linux namespaces")

func run(context.Context, Spec) error { return errNotLinux }

func isolate() error { return errNotLinux }

func removeStaleCgroups() {}

// FindEmulator needs Linux's binfmt_misc.
func FindEmulator(arch string) (Emulator, error) { return Emulator{}, errNotLinux }

type sandbox struct{}

func (s *Sandboxes) run(context.Context, Spec) error { return errNotLinux }

func (s *Sandboxes) prestart(Spec) {}

func (s *Sandboxes) close() error { return nil }

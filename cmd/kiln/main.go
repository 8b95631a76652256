// Command kiln builds OCI images from Dockerfiles without a daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/userns"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// initSum is the SHA-256 of the kiln-init built with this kiln (cmd/kiln-init), set
// by make build with -ldflags "-X main.initSum=…". RUN steps start that kiln-init
// when it is beside kiln (exec.InitBinary); a kiln built without it (go install)
// starts itself as their init.
var initSum string

// exitCodeError carries a specific exit code out of a command.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

func main() {
	// A process started as a RUN sandbox's init never gets past this line.
	exec.MaybeInit()
	// An ordinary user's kiln continues in a user namespace where it is root.
	if err := enterUserNamespace(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startMemoryLimit(ctx)

	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	err = userns.Explain(err)
	printError(os.Stderr, err)
	var ec *exitCodeError
	switch {
	case errors.As(err, &ec):
		os.Exit(ec.code)
	case ctx.Err() != nil:
		os.Exit(130)
	default:
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "kiln builds OCI images from Dockerfiles, without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(newBuildCmd(), newPruneCmd(), newDuCmd(), newCheckCmd(), newBinfmtCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "kiln %s (frontend docker/dockerfile:1)\n", version)
			return nil
		},
	}
}

// Command kiln-init is the init of kiln's RUN sandboxes, and nothing else: the code
// of exec.MaybeInit in a binary without the rest of kiln, so that a step does not
// pay kiln's package initialisation (~10 ms) to start. kiln starts it (see
// exec.InitBinary) only when it is the one kiln was built with; it is never run by
// hand.
package main

import (
	"fmt"
	"os"

	"github.com/kiln-build/kiln/exec"
)

func main() {
	exec.MaybeInit()
	fmt.Fprintln(os.Stderr, "kiln-init is the init of kiln's RUN sandboxes; kiln starts it, it is not a command")
	os.Exit(2)
}

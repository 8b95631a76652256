// Command kiln-init is the init of kiln's RUN sandboxes, and nothing else: the code
// of exec.MaybeInit (package sandboxinit) in a binary without the rest of kiln, so
// that a step does not pay the initialisation of kiln's packages (~12 ms of CPU) to
// start (TestLinksOnlyTheInit keeps it so). kiln starts it (see exec.InitBinary)
// only when it is the one kiln was built with; it is never run by hand.
package main

import (
	"fmt"
	"os"

	"github.com/kiln-build/kiln/internal/sandboxinit"
)

func main() {
	sandboxinit.Main()
	fmt.Fprintln(os.Stderr, "kiln-init is the init of kiln's RUN sandboxes; kiln starts it, it is not a command")
	os.Exit(2)
}

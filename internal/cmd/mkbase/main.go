// Command mkbase writes a busybox base image, made from Debian's busybox-static, as an
// OCI layout directory. `make demo` builds on it without a registry or network.
package main

import (
	"fmt"
	"os"

	"github.com/kiln-build/kiln/internal/testenv"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkbase DIR")
		os.Exit(2)
	}
	// A fresh layout every time: appending would leave two images tagged "latest".
	if err := os.RemoveAll(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkbase:", err)
		os.Exit(1)
	}
	if err := testenv.WriteBusyboxOCILayout(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkbase:", err)
		os.Exit(1)
	}
}

// Command mkbase writes a busybox base image, made from Debian's busybox-static, as an
// OCI layout directory. `make demo` builds on it without a registry or network. With
// -multiplatform the layout holds a two-platform index (linux/amd64 and linux/arm64,
// the arm64 one from busybox-static:arm64, which scripts/install-deps.sh fetches).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kiln-build/kiln/internal/testenv"
)

func main() {
	multi := flag.Bool("multiplatform", false, "write a linux/amd64 + linux/arm64 index")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mkbase [-multiplatform] DIR")
		os.Exit(2)
	}
	dir := flag.Arg(0)
	// A fresh layout every time: appending would leave two images tagged "latest".
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "mkbase:", err)
		os.Exit(1)
	}
	write := testenv.WriteBusyboxOCILayout
	if *multi {
		write = testenv.WriteBusyboxIndexLayout
	}
	if err := write(dir); err != nil {
		fmt.Fprintln(os.Stderr, "mkbase:", err)
		os.Exit(1)
	}
}

package main

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A COPY whose context changed in one file recompresses only the gzip members
// around that file, and the image is byte for byte the one a fresh root builds
// (SOURCE_DATE_EPOCH set: its layer is the step's, clamped, rewritten through the
// members the earlier export recorded). Without the epoch the two would differ by
// the time COPY gives the directory it creates, for kiln as for BuildKit.
func TestLayerMembersReusedAfterOneFileChanged(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	files := map[string]string{"Dockerfile": fmt.Sprintf("FROM %s/busybox\nCOPY src/ /src/\n", host)}
	rng := rand.New(rand.NewSource(21))
	for i := range 400 {
		b := make([]byte, 1000+rng.Intn(30000))
		rng.Read(b[:len(b)/2])
		files[fmt.Sprintf("src/d%d/f%03d", i%7, i)] = string(b)
	}
	dir := project(t, files)
	args := func() []string {
		return []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000",
			"-o", "type=oci,dest=" + filepath.Join(t.TempDir(), "o.tar")}
	}
	buildPlain(t, dir, root, args()...)
	for i, change := range []string{"one more line\n", "and another\n"} {
		f := filepath.Join(dir, "src", "d3", "f010")
		old, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, f, string(old)+change)
		warm := buildPlain(t, dir, root, args()...)
		if !strings.Contains(warm.log, "compressed parts reused from earlier layers") {
			t.Fatalf("change %d: the rebuild compressed the whole layer again:\n%s", i, warm.log)
		}
		fresh := buildPlain(t, dir, t.TempDir(), args()...)
		if strings.Contains(fresh.log, "reused from earlier layers") {
			t.Fatalf("a fresh root reused members:\n%s", fresh.log)
		}
		if warm.digest != fresh.digest {
			t.Fatalf("change %d: %s on the warm root, %s on a fresh one", i, warm.digest, fresh.digest)
		}
	}
}

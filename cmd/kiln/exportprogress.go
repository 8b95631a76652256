package main

import (
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// exportTask shows writing one output as a step of its own, named and detailed as
// BuildKit's exporters show theirs ("#9 exporting to oci image format", "#9 exporting
// manifest sha256:… done", "#9 sending tarball 0.2s done"). It returns the function
// that ends it with the write's result.
func exportTask(prog *progress, out outputSpec, img v1.Image, tags []string) func(error) {
	title := "exporting to image"
	switch out.Type {
	case "oci":
		title = "exporting to oci image format"
	case "docker":
		title = "exporting to docker image format"
	case "tar":
		title = "exporting to client tarball"
	case "local":
		title = "exporting to client directory"
	}
	task := prog.Task(title)
	start := time.Now()
	return func(err error) {
		if err != nil {
			task.Done(err)
			return
		}
		manifest, merr := img.Digest()
		config, cerr := img.ConfigName()
		switch out.Type {
		case "oci", "docker":
			if merr == nil && cerr == nil {
				task.Status(fmt.Sprintf("exporting manifest %s", manifest), time.Time{})
				task.Status(fmt.Sprintf("exporting config %s", config), time.Time{})
			}
			task.Status("sending tarball", start)
		case "tar", "local":
			task.Status("copying files", start)
		default: // a push
			names := tags
			if out.Name != "" {
				names = []string{out.Name}
			}
			if merr == nil && cerr == nil {
				task.Status(fmt.Sprintf("exporting manifest %s", manifest), time.Time{})
				task.Status(fmt.Sprintf("exporting config %s", config), time.Time{})
			}
			for _, n := range names {
				task.Status(fmt.Sprintf("naming to %s", n), time.Time{})
			}
			task.Status("pushing layers", start)
			for _, n := range names {
				if merr == nil {
					task.Status(fmt.Sprintf("pushing manifest for %s@%s", n, manifest), time.Time{})
				}
			}
		}
		task.Done(nil)
	}
}

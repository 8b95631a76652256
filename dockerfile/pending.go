package dockerfile

import (
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// A COPY whose files nothing in the build reads makes its layer straight from the
// sources: it creates the directories (so every destination rule runs against the
// real rootfs) but not the files, and the layer writer reads each file from where the
// copy would have read it (source.Pending). Each file is read once, and the step
// creates no inodes for them, which is most of a big COPY's cost. Its snapshot is not
// committed; a later build that needs it (a step added after the COPY, a local
// output) unpacks it from the layer (materialize).
//
// pendingOK says whether the COPY in sc may do that as far as the Dockerfile goes:
// no later step of the stage touches the filesystem, no other stage of the build
// reads this one, and the caller does not want the target stage's files. The engine
// adds its own conditions (overlay in use, not an ADD: solver.CopyInputs.Pending).
func (b *build) pendingOK(sc *stepCtx) bool {
	if b.opts.NeedRootfs && sc.stage.Index == b.g.Target {
		return false
	}
	for _, c := range sc.rest {
		switch c.Command.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
			return false
		}
	}
	for _, s := range b.g.Stages {
		for _, d := range s.Deps {
			if d == sc.stage.Index {
				return false
			}
		}
	}
	return true
}

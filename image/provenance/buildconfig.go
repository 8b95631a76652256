package provenance

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/moby/buildkit/solver/llbsolver/provenance/types"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// buildConfig is max mode's record of the steps, in BuildKit's shape: each step an
// LLB op ("stepN", its inputs "stepM:0"), the digest each step is known by, where
// the Dockerfile has it, and the Dockerfile itself.
func buildConfig(req Request, src Sources) (*types.BuildConfig, *types.Source) {
	names := map[string]string{}       // step identity -> stepN
	defs := map[string]digest.Digest{} // stepN -> its definition digest
	bc := &types.BuildConfig{DigestMapping: map[digest.Digest]string{}}
	meta := &types.Source{Locations: map[string]*pb.Locations{}}
	// In Dockerfile order, whatever order concurrent stages ran in: a step's
	// inputs are on earlier lines (or on its own, recorded before it).
	steps := slices.Clone(src.Steps)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].Line < steps[j].Line })
	for _, s := range steps {
		if _, dup := names[s.ID]; dup {
			continue
		}
		id := fmt.Sprintf("step%d", len(bc.Definition))
		names[s.ID] = id
		step := types.BuildStep{ID: id, Op: llbOp(s)}
		// A step is listed under the digest of what it is (its op and the digests
		// of its inputs), as an LLB vertex is: kiln's own identities of the trees
		// include the unclamped layers' digests and differ between roots.
		h := sha256.New()
		opJSON, _ := json.Marshal(step.Op)
		h.Write(opJSON)
		for _, in := range s.Inputs {
			if n, ok := names[in]; ok {
				step.Inputs = append(step.Inputs, n+":0")
				fmt.Fprintf(h, "\x00%s", defs[n])
			}
		}
		d := digest.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
		defs[id] = d
		bc.Definition = append(bc.Definition, step)
		bc.DigestMapping[d] = id
		if s.Line > 0 {
			end := s.EndLine
			if end < s.Line {
				end = s.Line
			}
			meta.Locations[id] = &pb.Locations{Locations: []*pb.Location{{Ranges: []*pb.Range{{
				Start: &pb.Position{Line: int32(s.Line)}, End: &pb.Position{Line: int32(end)},
			}}}}}
		}
	}
	if len(req.Dockerfile) > 0 {
		name := req.DockerfileName
		if name == "" {
			name = "Dockerfile"
		}
		meta.Infos = append(meta.Infos, types.SourceInfo{Filename: name, Language: "Dockerfile", Data: req.Dockerfile})
	}
	if len(bc.Definition) == 0 {
		bc = nil
	}
	return bc, meta
}

// llbOp is s as the LLB op BuildKit would have run for it.
func llbOp(s Step) *pb.Op {
	op := &pb.Op{Platform: pbPlatform(s.Platform), Constraints: &pb.WorkerConstraints{}}
	switch {
	case s.Exec != nil:
		e := &pb.ExecOp{
			Meta: &pb.Meta{
				Args: s.Exec.Args, Env: s.Exec.Env, Cwd: s.Exec.Cwd, User: s.Exec.User,
				RemoveMountStubsRecursive: true,
			},
			Mounts: []*pb.Mount{{Dest: "/"}},
		}
		switch s.Exec.Network {
		case "none":
			e.Network = pb.NetMode_NONE
		case "host":
			e.Network = pb.NetMode_HOST
		}
		op.Op = &pb.Op_Exec{Exec: e}
	case s.Copy != nil:
		var actions []*pb.FileAction
		for _, src := range s.Copy.Sources {
			actions = append(actions, &pb.FileAction{
				Input: 0, SecondaryInput: 1, Output: 0,
				Action: &pb.FileAction_Copy{Copy: &pb.FileActionCopy{
					Src: src, Dest: s.Copy.Dest, Mode: -1, Timestamp: -1,
					FollowSymlink: true, DirCopyContents: true, CreateDestPath: true,
					AllowWildcard: true, AllowEmptyWildcard: true,
				}},
			})
		}
		op.Op = &pb.Op_File{File: &pb.FileOp{Actions: actions}}
	case s.Mkdir != "":
		op.Op = &pb.Op_File{File: &pb.FileOp{Actions: []*pb.FileAction{{
			Input: 0, SecondaryInput: -1, Output: 0,
			Action: &pb.FileAction_Mkdir{Mkdir: &pb.FileActionMkDir{Path: s.Mkdir, Mode: 0o755, MakeParents: true, Timestamp: -1}},
		}}}}
	case s.Source != "":
		op.Op = &pb.Op_Source{Source: &pb.SourceOp{Identifier: s.Source}}
	}
	return op
}

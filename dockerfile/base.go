package dockerfile

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source/remote"
)

// baseImage is the image a FROM or a --from names, pulled and unpacked by the
// engine (once per build): a named build context of that name (an OCI layout or
// an image reference), else a registry image. platform is FROM --platform ("": the
// platform of eng, the stage's engine). note receives what the pull has to tell the
// user. thenRun is the first RUN of the stage built on it, if any (see
// solver.ImageRef).
func (b *build) baseImage(ctx context.Context, eng *solver.Engine, ref, platform string, line int, thenRun *solver.RunAhead, note func(string)) (*solver.Base, error) {
	img := solver.ImageRef{Ref: ref, ThenRun: thenRun}
	if platform != "" {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return nil, fmt.Errorf("FROM --platform=%s: %w", platform, err)
		}
		img.Platform = *p
	}
	if nc, ok := b.namedContext(ref); ok {
		switch nc.Kind {
		case remote.ContextOCILayout:
			img.Ref, img.Layout = nc.Ref, true
		case remote.ContextImage:
			img.Ref = nc.Ref
		default:
			return nil, fmt.Errorf("build context %s is a directory, a git repository or a URL: it can be used with COPY --from, not as an image", ref)
		}
	}
	base, err := eng.Image(ctx, img, note)
	if err != nil {
		return nil, err
	}
	p := img.Platform
	if p.OS == "" {
		p = eng.Platform()
	}
	b.recordBase(img.Ref, img.Layout, p, base, line)
	return base, nil
}

// firstRun is what decides the sandbox of stage s's first RUN, nil when it has none
// (or one that fails when it comes).
func (b *build) firstRun(s *parser.Stage) *solver.RunAhead {
	for _, c := range s.Commands {
		if r, ok := c.Command.(*instructions.RunCommand); ok {
			n, err := b.runNetwork(r)
			if err != nil {
				return nil
			}
			return &solver.RunAhead{Network: n}
		}
	}
	return nil
}

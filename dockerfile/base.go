package dockerfile

import (
	"context"
	"fmt"

	"github.com/kiln-build/kiln/source/remote"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/solver"
)

// baseImage is the image a FROM or a --from names, pulled and unpacked by the
// engine (once per build): a named build context of that name (an OCI layout or
// an image reference), else a registry image. platform is FROM --platform ("": the
// platform of eng, the stage's engine). note receives what the pull has to tell the
// user.
func (b *build) baseImage(ctx context.Context, eng *solver.Engine, ref, platform string, line int, note func(string)) (*solver.Base, error) {
	img := solver.ImageRef{Ref: ref}
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

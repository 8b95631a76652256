package dockerfile

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/solver"
)

// finish turns the target stage into the output image.
func (b *build) finish(ctx context.Context, st *stageState) (*solver.Result, error) {
	cfg := cloneConfig(st.cfg)
	if len(b.opts.Labels) > 0 {
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		for k, v := range b.opts.Labels {
			cfg.Config.Labels[k] = v
		}
	}
	cfg.Created = v1.Time{Time: st.fs.Created}
	if cfg.OS == "" {
		cfg.OS = b.opts.Platform.OS
		cfg.Architecture = b.opts.Platform.Architecture
	}
	return st.eng.Export(ctx, st.fs, cfg, st.cfgExtras, b.opts.NeedRootfs)
}

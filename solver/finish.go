package solver

import (
	"context"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/image"
)

// finish turns the target stage into the output image.
func (b *build) finish(ctx context.Context, st *stageState) (*Result, error) {
	cfg := cloneConfig(st.cfg)
	if len(b.opts.Labels) > 0 {
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		for k, v := range b.opts.Labels {
			cfg.Config.Labels[k] = v
		}
	}
	cfg.Created = v1.Time{Time: st.created}
	if cfg.OS == "" {
		cfg.OS = b.opts.Platform.OS
		cfg.Architecture = b.opts.Platform.Architecture
	}
	if len(st.layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("internal error: %d layers but %d diff_ids", len(st.layers), len(cfg.RootFS.DiffIDs))
	}
	ls, err := b.exportLayers(ctx, st, cfg)
	if err != nil {
		return nil, fmt.Errorf("export layers: %w", err)
	}
	img, err := image.Assemble(cfg, ls)
	if err != nil {
		return nil, fmt.Errorf("assemble image: %w", err)
	}
	if b.opts.NeedRootfs {
		if err := b.materialize(ctx, st.layers); err != nil {
			return nil, fmt.Errorf("unpack the image's filesystem: %w", err)
		}
	}
	b.mu.Lock()
	steps := slices.Clone(b.steps)
	b.mu.Unlock()
	return &Result{Image: img, Config: cfg, Snapshots: st.snapshots(), Steps: steps}, nil
}

package main

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/dockerfile"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/solver"
)

// remoteCaches are a build's --cache-from and --cache-to.
type remoteCaches struct {
	from, to []remote.Spec
}

func (o buildOptions) remoteCaches() (remoteCaches, error) {
	var rc remoteCaches
	for _, v := range o.cacheFrom {
		s, err := remote.Parse(v, false)
		if err != nil {
			return rc, err
		}
		rc.from = append(rc.from, s)
	}
	for _, v := range o.cacheTo {
		s, err := remote.Parse(v, true)
		if err != nil {
			return rc, err
		}
		rc.to = append(rc.to, s)
	}
	return rc, nil
}

// open puts the --cache-from caches behind the local store; nil when the build uses
// no remote cache.
func (rc remoteCaches) open(ctx context.Context, local *cache.Store, client *image.Client, insecure []string, epoch *time.Time, prog *progress) (*remote.Store, error) {
	if len(rc.from) == 0 && len(rc.to) == 0 {
		return nil, nil
	}
	return remote.Open(ctx, local, rc.from, remote.StoreOptions{
		KeyVersion: solver.KeyVersion, Insecure: insecure, Client: client, Note: prog.Info, Warn: prog.Warn, SourceDateEpoch: epoch,
		MemoPrefix: dockerfile.SelectionMemoPrefix,
	})
}

// finalKeys are the entries mode=min records: the final image's steps (the target
// stage and the stages it is built FROM) and the output's layer transforms.
func finalKeys(res *solver.Result, g *parser.Graph, mode remote.Mode) []string {
	final := map[int]bool{solver.OutputGroup: true}
	for i := g.Target; i >= 0 && !final[i]; i = g.Stages[i].BaseStage {
		final[i] = true
	}
	var keys []string
	for _, st := range res.Steps {
		if mode == remote.ModeMax || final[st.Group] {
			keys = append(keys, st.Key)
		}
	}
	return keys
}

// inline puts the records of the final image's steps in its config (--cache-to
// type=inline), replacing res.Image: every output, a push included, carries them.
func (rc remoteCaches) inline(ctx context.Context, rs *remote.Store, res *solver.Result, g *parser.Graph, epoch *time.Time, prog *progress) error {
	for _, spec := range rc.to {
		if spec.Type != "inline" {
			continue
		}
		val, n, err := remote.InlineCache(ctx, rs, finalKeys(res, g, remote.ModeMin), res.StepDiffIDs, res.Config.RootFS.DiffIDs,
			remote.InlineOptions{KeyVersion: solver.KeyVersion, SourceDateEpoch: epoch})
		if err == nil {
			var ls []v1.Layer
			if ls, err = res.Image.Layers(); err == nil {
				var img v1.Image
				if img, err = image.AssembleWith(res.Config, ls, image.AssembleOptions{Extras: res.ConfigExtras, Field: remote.InlineField, FieldValue: val}); err == nil {
					res.Image = img
					prog.Info(fmt.Sprintf("cache-to inline: %d records in the image config", n))
					return nil
				}
			}
		}
		if spec.IgnoreError {
			prog.Warn(fmt.Sprintf("cache-to inline: %v; the image is written without it (ignore-error=true)", err))
			return nil
		}
		return fmt.Errorf("cache-to inline: %w (add ignore-error=true to the --cache-to to only warn)", err)
	}
	return nil
}

// export writes the build's entries to every --cache-to: mode=min the final image's
// steps (the target stage and the stages it is built FROM), mode=max every step of
// every stage built. A cache with ignore-error=true that fails only warns.
func (rc remoteCaches) export(ctx context.Context, rs *remote.Store, res *solver.Result, g *parser.Graph, client *image.Client, insecure []string, prog *progress) error {
	if rs == nil {
		return nil
	}
	for _, spec := range rc.to {
		if spec.Type == "inline" {
			continue // in the image (inline)
		}
		err := remote.Export(ctx, spec, rs, finalKeys(res, g, spec.Mode), remote.ExportOptions{KeyVersion: solver.KeyVersion, Insecure: insecure, Client: client, Note: prog.Info})
		if err != nil && spec.IgnoreError {
			prog.Warn(fmt.Sprintf("%v; the build succeeded without exporting it (ignore-error=true)", err))
			continue
		}
		if err != nil {
			return fmt.Errorf("%w (add ignore-error=true to the --cache-to to only warn)", err)
		}
	}
	return nil
}

// prefetch starts downloading the image's layers that are still in a remote cache
// when an output writes every layer's bytes (an image tarball); a push mounts them.
func (rc remoteCaches) prefetch(rs *remote.Store, b image.Built, outs []outputSpec) {
	if rs == nil {
		return
	}
	imgs := []v1.Image{b.Image}
	if b.Index != nil {
		imgs = imgs[:0]
		for _, p := range b.Platforms {
			imgs = append(imgs, p.Image)
		}
	}
	for _, out := range outs {
		if out.Type != "oci" && out.Type != "docker" {
			continue
		}
		for _, img := range imgs {
			if ls, err := img.Layers(); err == nil {
				rs.Prefetch(ls)
			}
		}
		return
	}
}

// summary says what the build took from the remote caches.
func (rc remoteCaches) summary(rs *remote.Store, prog *progress) {
	if rs == nil {
		return
	}
	if s := rs.Summary(); s != "" {
		prog.Info(s)
	}
}

package main

import (
	"context"
	"fmt"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/remote"
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
func (rc remoteCaches) open(ctx context.Context, local *cache.Store, insecure []string, prog *progress) (*remote.Store, error) {
	if len(rc.from) == 0 && len(rc.to) == 0 {
		return nil, nil
	}
	return remote.Open(ctx, local, rc.from, remote.StoreOptions{
		KeyVersion: solver.KeyVersion, Insecure: insecure, Note: prog.Info, Warn: prog.Warn,
	})
}

// export writes the build's entries to every --cache-to: mode=min the final image's
// steps (the target stage and the stages it is built FROM), mode=max every step of
// every stage built. A cache with ignore-error=true that fails only warns.
func (rc remoteCaches) export(ctx context.Context, rs *remote.Store, res *solver.Result, g *parser.Graph, insecure []string, prog *progress) error {
	if rs == nil {
		return nil
	}
	final := map[int]bool{solver.OutputGroup: true} // the output's layer transforms
	for i := g.Target; i >= 0 && !final[i]; i = g.Stages[i].BaseStage {
		final[i] = true
	}
	for _, spec := range rc.to {
		var keys []string
		for _, st := range res.Steps {
			if spec.Mode == remote.ModeMax || final[st.Group] {
				keys = append(keys, st.Key)
			}
		}
		err := remote.Export(ctx, spec, rs, keys, remote.ExportOptions{KeyVersion: solver.KeyVersion, Insecure: insecure, Note: prog.Info})
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
func (rc remoteCaches) prefetch(rs *remote.Store, res *solver.Result, outs []outputSpec) {
	if rs == nil {
		return
	}
	for _, out := range outs {
		if out.Type != "oci" && out.Type != "docker" {
			continue
		}
		if ls, err := res.Image.Layers(); err == nil {
			rs.Prefetch(ls)
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

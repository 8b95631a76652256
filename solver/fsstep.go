package solver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
)

// fsStep runs a filesystem-changing step through the cache: on a hit the recorded layer
// is reused; on a miss do runs over a fresh overlay snapshot whose upper dir becomes
// the step's layer. createdBy is the history text.
func (b *build) fsStep(ctx context.Context, sc *stepCtx, op *Op, files map[string]string, createdBy string, do func(ctx context.Context, root string) error) error {
	return b.step(ctx, sc, op, files, createdBy, false, do)
}

// step is fsStep; linked runs do over an empty snapshot instead of the stage and keys
// the step without the stage below it (COPY --link, see linkedStep).
//
// files are the per-file digests of what a COPY reads, kept only to explain a later
// miss.
func (b *build) step(ctx context.Context, sc *stepCtx, op *Op, files map[string]string, createdBy string, linked bool, do func(ctx context.Context, root string) error) error {
	st := sc.st
	op.Parent = st.key
	if linked {
		op.Parent = ""
	}
	op.Platform = b.opts.Platform.String()
	rec := &opRecord{Op: *op, Files: files}
	key := op.key()
	// The stage's key after a linked step still covers the stage below it, which the
	// step's own key leaves out.
	stageKey := key
	if linked {
		stageKey = digestOf("link", st.key, key)
	}
	sc.id = int(b.nextID.Add(1))
	scope := b.scope(sc)

	why := ""
	if !b.noCacheFor(sc.stage) {
		e, ok, err := b.opts.Store.GetStep(ctx, key)
		if err != nil {
			return fmt.Errorf("read cache: %w", err)
		}
		if ok && !b.hasLayerBlob(e) {
			// The entry outlived its blob (removed as damaged, or by hand): the
			// step is made again.
			ok, why = false, "its layer blob is gone from the store"
		}
		if ok {
			b.emit(Event{Kind: StepCached, ID: sc.id, Name: sc.name})
			if ls, lazy := b.opts.Store.(LazyStore); lazy && ls.Origin(key) != "" {
				b.emit(Event{Kind: StepInfo, ID: sc.id, Name: sc.name, Message: "from remote cache " + ls.Origin(key)})
			}
			b.usedStep(sc.stage.Index, key)
			return b.applyEntry(st, e, stageKey, createdBy)
		}
		if why == "" {
			why = b.explainMiss(ctx, scope, rec)
		}
	}

	release, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	b.emit(Event{Kind: StepStarted, ID: sc.id, Name: sc.name, Time: start})
	if why != "" {
		b.emit(Event{Kind: StepInfo, ID: sc.id, Name: sc.name, Message: "cache miss: " + displayInstruction(sc.cmd) + " (" + why + ")"})
	}
	e, err := b.execStep(ctx, sc, key, linked, do)
	if err != nil {
		b.emit(Event{Kind: StepFailed, ID: sc.id, Name: sc.name, Message: err.Error(), Duration: time.Since(start)})
		return err
	}
	if data, err := json.Marshal(rec); err == nil {
		_ = b.opts.Store.SetLastInputs(ctx, scope, data)
	}
	// The entry keeps its op without the per-file digests: those can run to
	// megabytes for a big COPY, and the entry is read and rewritten on every hit (its
	// use time); explaining a miss needs only the last record of the step's position.
	e.Inputs = op.encode()
	if b.noCacheFor(sc.stage) {
		err = b.opts.Store.PutStep(ctx, e)
	} else {
		// Another build on this root (or a twin stage of this one) may have recorded
		// the same step while this one ran: keep the first result (one transaction
		// checks and writes), so that builds racing on a step that is not
		// reproducible still share the steps after it (they are keyed by the
		// result). Ours becomes garbage for prune.
		e, err = b.opts.Store.PutStepIfAbsent(ctx, e)
	}
	if err != nil {
		return fmt.Errorf("record cache entry: %w", err)
	}
	b.emit(Event{Kind: StepDone, ID: sc.id, Name: sc.name, Duration: time.Since(start)})
	b.usedStep(sc.stage.Index, key)
	return b.applyEntry(st, e, stageKey, createdBy)
}

// execStep prepares a snapshot over the stage (over nothing when linked), runs do in
// it, and commits the diff as a layer blob and a snapshot.
func (b *build) execStep(ctx context.Context, sc *stepCtx, key string, linked bool, do func(ctx context.Context, root string) error) (*cache.Entry, error) {
	parents := sc.st.snapshots()
	if linked {
		parents = nil
	} else if err := b.materialize(ctx, sc.st.layers); err != nil {
		return nil, err
	}
	active, err := b.opts.Snapshots.Prepare(ctx, parents)
	if err != nil {
		return nil, fmt.Errorf("prepare snapshot: %w", err)
	}
	defer active.Discard(context.WithoutCancel(ctx))
	if err := do(ctx, active.Root); err != nil {
		return nil, err
	}
	var pending []layers.PendingFile
	if sc.pending != nil {
		pending = sc.pending.Files()
		dirs := make([]string, len(pending))
		for i, f := range pending {
			dirs[i] = path.Dir(f.Name)
		}
		active.KeepDirs(dirs)
	}
	if err := active.Unmount(ctx); err != nil {
		return nil, fmt.Errorf("unmount snapshot: %w", err)
	}
	// The entry keeps when the step really ran: SOURCE_DATE_EPOCH is applied when
	// the history is written (applyEntry), and is not part of the step.
	now := time.Now()
	e := &cache.Entry{Key: key, Created: now.UTC(), Used: now}

	bw, err := b.opts.Store.NewBlobWriter()
	if err != nil {
		return nil, err
	}
	defer bw.Abort()
	blob, empty, err := layers.WriteUpperDiff(ctx, active.Upper, bw, layers.WriteOptions{
		Compression: b.opts.Compression, Pending: pending, NormalizeTree: true,
	})
	if err != nil {
		return nil, sc.errorf(b.opts.Filename, "write the step's layer: %w", err)
	}
	if empty {
		return e, nil
	}
	if err := bw.Commit(blob.Digest, false); err != nil {
		return nil, fmt.Errorf("store layer: %w", err)
	}
	// The snapshot is named by the step that made it, never by its layer's digest:
	// two steps whose layers are equal can have made trees a later step tells apart,
	// and a step that reruns (--no-cache, two builds racing on one root) must not
	// pick up a snapshot an earlier run left. Each execution gets its own name; the
	// entry recorded for the key says which one is the step's.
	snap, err := snapshotName(key)
	if err != nil {
		return nil, err
	}
	// With pending files the upper dir is not the layer's content: the snapshot is
	// left to be unpacked from the layer if anything ever needs it.
	if len(pending) == 0 {
		if err := active.Commit(ctx, snap); err != nil {
			return nil, fmt.Errorf("commit snapshot: %w", err)
		}
	}
	e.Layer = &cache.Layer{
		Digest: blob.Digest.String(), DiffID: blob.DiffID.String(), Size: blob.Size,
		MediaType: string(blob.MediaType), Snapshot: snap,
	}
	return e, nil
}

// applyEntry adds a step's result to the stage: its layer (if any) and history.
func (b *build) applyEntry(st *stageState, e *cache.Entry, key, createdBy string) error {
	st.key = key
	st.created = b.epochOr(e.Created)
	h := v1.History{Created: v1.Time{Time: st.created}, CreatedBy: createdBy, Comment: historyComment}
	if e.Layer == nil {
		h.EmptyLayer = true
		st.cfg.History = append(st.cfg.History, h)
		return nil
	}
	// Later steps are keyed by what this step produced, not only by its key: a step
	// that is not reproducible can have had several results under one key (a rerun
	// with --no-cache, builds racing on one root, the last one recorded wins), and a
	// step cached on top of one of them must not be reused on top of another.
	st.key = digestOf("result", key, e.Layer.DiffID)
	digest, err := v1.NewHash(e.Layer.Digest)
	if err != nil {
		return fmt.Errorf("cache entry %s: %w", key, err)
	}
	diffID, err := v1.NewHash(e.Layer.DiffID)
	if err != nil {
		return fmt.Errorf("cache entry %s: %w", key, err)
	}
	l, ok := b.stepLayer(e.Layer, digest, diffID)
	if !ok {
		// Checked by the lookup (hasLayerBlob); gone since, reading it fails.
		l = image.StoreLayer(b.opts.Store, digest, diffID, e.Layer.Size, types.MediaType(e.Layer.MediaType))
	}
	st.layers = append(st.layers, stageLayer{layer: l, snapshot: e.Layer.Snapshot, step: true})
	st.cfg.RootFS.DiffIDs = append(st.cfg.RootFS.DiffIDs, diffID)
	st.cfg.History = append(st.cfg.History, h)
	return nil
}

// scope names a step's position across builds (same context, Dockerfile, stage and
// step), under which its last inputs are kept to explain a later miss.
func (b *build) scope(sc *stepCtx) string {
	dir := ""
	if b.opts.Context != nil {
		dir = b.opts.Context.Dir
	}
	return digestOf("scope", dir, b.opts.Filename, sc.stage.Name, fmt.Sprint(sc.stage.Index), fmt.Sprint(sc.pos))
}

// explainMiss compares rec with the op last recorded at this step's position.
func (b *build) explainMiss(ctx context.Context, scope string, rec *opRecord) string {
	data, ok := b.opts.Store.LastInputs(ctx, scope)
	if !ok {
		return "" // never built here before: nothing to explain
	}
	var old opRecord
	if err := json.Unmarshal(data, &old); err != nil {
		return ""
	}
	return explainOpChange(&old, rec)
}

func describeFileChanges(old, cur map[string]string) string {
	var changed []string
	for p, d := range cur {
		if od, ok := old[p]; !ok {
			changed = append(changed, p+" added")
		} else if od != d {
			changed = append(changed, p+" changed")
		}
	}
	for p := range old {
		if _, ok := cur[p]; !ok {
			changed = append(changed, p+" removed")
		}
	}
	if len(changed) == 0 {
		return "source files changed"
	}
	slices.Sort(changed)
	if len(changed) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(changed[:3], ", "), len(changed)-3)
	}
	return strings.Join(changed, ", ")
}

func describeEnvChange(old, cur []string) string {
	index := func(env []string) map[string]string {
		m := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}
	o, c := index(old), index(cur)
	var names []string
	for k, v := range c {
		if ov, ok := o[k]; !ok || ov != v {
			names = append(names, k)
		}
	}
	for k := range o {
		if _, ok := c[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "environment changed"
	}
	return "build arg or env " + strings.Join(names, ", ") + " changed"
}

// snapshotName names the snapshot of one execution of the step with key: the key,
// and a random part that keeps reruns of the key apart.
func snapshotName(key string) (string, error) {
	var run [8]byte
	if _, err := rand.Read(run[:]); err != nil {
		return "", fmt.Errorf("name snapshot: %w", err)
	}
	return fmt.Sprintf("s-%.40s-%x", key, run), nil
}

// hasLayerBlob reports whether the blob of e's layer (if it has one) is in the store,
// or can be fetched by it (a LazyStore).
func (b *build) hasLayerBlob(e *cache.Entry) bool {
	if e.Layer == nil {
		return true
	}
	d, err := v1.NewHash(e.Layer.Digest)
	if err != nil {
		return false
	}
	diffID, err := v1.NewHash(e.Layer.DiffID)
	if err != nil {
		return false
	}
	_, ok := b.stepLayer(e.Layer, d, diffID)
	return ok
}

// stepLayer is the layer of a step entry: the store's blob, or what a LazyStore
// fetches when it is read.
func (b *build) stepLayer(l *cache.Layer, digest, diffID v1.Hash) (v1.Layer, bool) {
	if ls, ok := b.opts.Store.(LazyStore); ok {
		return ls.StepLayer(l)
	}
	if !b.opts.Store.HasBlob(digest) {
		return nil, false
	}
	return image.StoreLayer(b.opts.Store, digest, diffID, l.Size, types.MediaType(l.MediaType)), true
}

// usedStep records that the build used the entry of key in stage (Result.Steps).
func (b *build) usedStep(stage int, key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.steps = append(b.steps, UsedStep{Key: key, Stage: stage})
}

package solver

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/source"
)

// stepExec is a Step with how the engine executes it on a miss.
type stepExec struct {
	Step
	// linked runs do over an empty snapshot instead of the state and keys the op
	// without the state below it (COPY --link, see link.go).
	linked bool
	do     func(ctx context.Context, root string) error
	// pending collects the files a COPY leaves out of the snapshot (pending.go);
	// set by do.
	pending *source.Pending
}

// step runs an op through the cache: on a hit the recorded layer is reused; on a
// miss x.do runs over a fresh snapshot whose upper dir becomes the op's layer.
func (e *Engine) step(ctx context.Context, st State, x *stepExec) (StepResult, error) {
	op := x.Op
	op.Parent = st.Key
	if x.linked {
		op.Parent = ""
	}
	op.Platform = e.opts.Platform.String()
	rec := &opRecord{Op: *op}
	key := op.key()
	// The state's key after a linked step still covers the state below it, which
	// the step's own key leaves out.
	stageKey := key
	if x.linked {
		stageKey = digestOf("link", st.Key, key)
	}
	return e.resolveOnce(ctx, stageKey, x, func() (StepResult, error) {
		return e.resolve(ctx, st, x, rec, key, stageKey)
	})
}

// resolve looks the op of key up in the store, or executes it and records it.
func (e *Engine) resolve(ctx context.Context, st State, x *stepExec, rec *opRecord, key, stageKey string) (StepResult, error) {
	fail := func(err error) (StepResult, error) {
		if x.Annotate != nil {
			err = x.Annotate(err)
		}
		return StepResult{}, err
	}
	op := &rec.Op
	scope := x.Scope

	why := ""
	if !x.NoCache {
		ent, ok, err := e.opts.Store.GetStep(ctx, key)
		if err != nil {
			return fail(fmt.Errorf("read cache: %w", err))
		}
		if ok && !e.hasLayerBlob(ent) {
			// The entry outlived its blob (removed as damaged, or by hand): the
			// step is made again.
			ok, why = false, "its layer blob is gone from the store"
		}
		if ok {
			// Where the hit came from is said before the step ends, in its block.
			if ls, lazy := e.opts.Store.(LazyStore); lazy && ls.Origin(key) != "" {
				e.Emit(Event{Kind: StepInfo, ID: x.ID, Name: x.Name, Message: "from remote cache " + ls.Origin(key)})
			}
			e.Emit(Event{Kind: StepCached, ID: x.ID, Name: x.Name})
			e.usedStep(x.Group, key)
			return e.applyEntry(st, ent, stageKey)
		}
		if why == "" {
			x.addFiles(rec)
			why = e.explainMiss(ctx, scope, rec)
		}
	}
	// The record is encoded before the step runs and kept until it is done: a big
	// COPY's per-file digests are megabytes, which the step's own work (the layer
	// write of the same files) should not carry beside it; a big one waits on disk.
	x.addFiles(rec)
	encoded, err := encodeRecord(rec)
	if err != nil {
		return fail(err)
	}
	rec.Files = nil
	inputs := e.holdInputs(encoded, heldInputsAbove)
	defer inputs.drop()

	release, err := e.acquire(ctx)
	if err != nil {
		return fail(err)
	}
	defer release()
	start := time.Now()
	e.Emit(Event{Kind: StepStarted, ID: x.ID, Name: x.Name, Time: start})
	if why != "" {
		e.Emit(Event{Kind: StepInfo, ID: x.ID, Name: x.Name, Message: "cache miss: " + x.Display + " (" + why + ")"})
	}
	ent, err := e.execStep(ctx, st, x, key)
	if err != nil {
		// The step's line shows in its title; its message is the error's own.
		e.Emit(Event{Kind: StepFailed, ID: x.ID, Name: x.Name, Message: err.Error(), Duration: time.Since(start), Canceled: ctx.Err() != nil})
		return fail(err)
	}
	if data, err := inputs.take(); err == nil {
		_ = e.opts.Store.SetLastInputs(ctx, scope, data)
	}
	// The entry keeps its op without the per-file digests: those can run to
	// megabytes for a big COPY, and the entry is read and rewritten on every hit (its
	// use time); explaining a miss needs only the last record of the step's position.
	ent.Inputs = op.encode()
	if x.NoCache {
		err = e.opts.Store.PutStep(ctx, ent)
	} else {
		// Another build on this root (or a twin stage of this one) may have recorded
		// the same step while this one ran: keep the first result (one transaction
		// checks and writes), so that builds racing on a step that is not
		// reproducible still share the steps after it (they are keyed by the
		// result). Ours becomes garbage for prune.
		ent, err = e.opts.Store.PutStepIfAbsent(ctx, ent)
	}
	if err != nil {
		return fail(fmt.Errorf("record cache entry: %w", err))
	}
	e.Emit(Event{Kind: StepDone, ID: x.ID, Name: x.Name, Duration: time.Since(start)})
	e.usedStep(x.Group, key)
	return e.applyEntry(st, ent, stageKey)
}

// execStep prepares a snapshot over the state (over nothing when linked), runs do in
// it, and commits the diff as a layer blob and a snapshot.
func (e *Engine) execStep(ctx context.Context, st State, x *stepExec, key string) (*cache.Entry, error) {
	parents := st.Snapshots()
	if x.linked {
		parents = nil
	} else if err := e.materialize(ctx, st.Layers); err != nil {
		return nil, err
	}
	active, err := e.opts.Snapshots.Prepare(ctx, parents)
	if err != nil {
		return nil, fmt.Errorf("prepare snapshot: %w", err)
	}
	defer active.Discard(context.WithoutCancel(ctx))
	if err := x.do(ctx, active.Root); err != nil {
		return nil, err
	}
	var pending layers.PendingFiles
	if x.pending != nil {
		if pending = x.pending.Files(); pending.Len() > 0 {
			active.KeepDirs(pending.Dirs())
		} else {
			pending = nil
		}
	}
	if x.Op.Run != nil && x.pending == nil {
		// A RUN's layer leaves out the files it copied up without changing them,
		// as BuildKit's does.
		active.PruneUnchangedFiles()
	}
	if err := active.Unmount(ctx); err != nil {
		return nil, fmt.Errorf("unmount snapshot: %w", err)
	}
	// The entry keeps when the step really ran: SOURCE_DATE_EPOCH is applied when
	// the history is written (applyEntry), and is not part of the step.
	now := time.Now()
	ent := &cache.Entry{Key: key, Created: now.UTC(), Used: now}

	bw, err := e.opts.Store.NewBlobWriter()
	if err != nil {
		return nil, err
	}
	defer bw.Abort()
	opts := layers.WriteOptions{
		// At the codec's default level whatever the output asks: a level is an
		// export transform (export.go), so a cached layer's bytes never depend on
		// which build made it first.
		Compression: e.opts.Compression, Pending: pending, NormalizeTree: true,
		Below: active.Below,
	}
	members, _ := e.opts.Store.(MemberStore)
	if members != nil {
		opts.Members = members
	}
	// A step that changed nothing still adds a layer, the empty tar, as BuildKit
	// does: its history entry is a layer's, not an empty_layer one, so tools that
	// count layers or pair them with history see BuildKit's image. With no entry
	// written the upper dir holds nothing a layer carries, so it is the snapshot.
	blob, _, err := layers.WriteUpperDiff(ctx, active.Upper, bw, opts)
	if err != nil {
		return nil, fmt.Errorf("write the step's layer: %w", err)
	}
	if err := bw.Commit(blob.Digest, false); err != nil {
		return nil, fmt.Errorf("store layer: %w", err)
	}
	if members != nil {
		// Only advice for later layers: a step whose members were not recorded
		// has still made its layer.
		if err := members.PutMembers(ctx, blob.Digest, blob.Members); err != nil {
			e.Emit(Event{Kind: StepInfo, ID: x.ID, Name: x.Name, Message: "warning: " + err.Error()})
		}
	}
	if blob.ReusedMembers > 0 {
		e.Emit(Event{Kind: StepInfo, ID: x.ID, Name: x.Name, Message: fmt.Sprintf(
			"layer: %d of %d compressed parts reused from earlier layers", blob.ReusedMembers, len(blob.Members))})
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
	if pending == nil {
		if err := active.Commit(ctx, snap); err != nil {
			return nil, fmt.Errorf("commit snapshot: %w", err)
		}
		e.madeIntact(snap)
	}
	ent.Layer = &cache.Layer{
		Digest: blob.Digest.String(), DiffID: blob.DiffID.String(), Size: blob.Size,
		MediaType: string(blob.MediaType), Snapshot: snap,
	}
	return ent, nil
}

// applyEntry puts a step's result on the state: its layer (if any), its key and
// its time.
func (e *Engine) applyEntry(st State, ent *cache.Entry, key string) (StepResult, error) {
	st.Key = key
	st.Created = e.epochOr(ent.Created)
	if ent.Layer == nil {
		return StepResult{State: st}, nil
	}
	// Later steps are keyed by what this step produced, not only by its key: a step
	// that is not reproducible can have had several results under one key (a rerun
	// with --no-cache, builds racing on one root, the last one recorded wins), and a
	// step cached on top of one of them must not be reused on top of another.
	st.Key = digestOf("result", key, ent.Layer.DiffID)
	digest, err := v1.NewHash(ent.Layer.Digest)
	if err != nil {
		return StepResult{}, fmt.Errorf("cache entry %s: %w", key, err)
	}
	diffID, err := v1.NewHash(ent.Layer.DiffID)
	if err != nil {
		return StepResult{}, fmt.Errorf("cache entry %s: %w", key, err)
	}
	l, ok := e.stepLayer(ent.Layer, digest, diffID)
	if !ok {
		// Checked by the lookup (hasLayerBlob); gone since, reading it fails.
		l = image.StoreLayer(e.opts.Store, digest, diffID, ent.Layer.Size, types.MediaType(ent.Layer.MediaType))
	}
	st.Layers = st.withLayer(Layer{Layer: l, Snapshot: ent.Layer.Snapshot, Step: true})
	return StepResult{State: st, DiffID: &diffID}, nil
}

// addFiles fills in rec's per-file digests. Files is called once: its caller may
// let go of what it made them from.
func (x *stepExec) addFiles(rec *opRecord) {
	if x.Files != nil {
		rec.Files, x.Files = x.Files(), nil
	}
}

// explainMiss compares rec with the op last recorded at this step's position.
func (e *Engine) explainMiss(ctx context.Context, scope string, rec *opRecord) string {
	data, ok := e.opts.Store.LastInputs(ctx, scope)
	if !ok {
		return "" // never built here before: nothing to explain
	}
	// The earlier record's files are compared with rec's as they are read.
	var old opRecord
	changes := fileChanges{cur: rec.Files}
	if err := scanRecord(data, &old, changes.old); err != nil {
		return ""
	}
	files := changes.describe
	if changes.unsorted {
		files = func() string {
			var sorted opRecord
			if err := decodeRecord(data, &sorted); err != nil {
				return "source files changed"
			}
			return describeFileChanges(sorted.Files, rec.Files)
		}
	}
	return explainOpChange(&old, rec, files)
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

// hasLayerBlob reports whether the blob of ent's layer (if it has one) is in the store,
// or can be fetched by it (a LazyStore).
func (e *Engine) hasLayerBlob(ent *cache.Entry) bool {
	if ent.Layer == nil {
		return true
	}
	d, err := v1.NewHash(ent.Layer.Digest)
	if err != nil {
		return false
	}
	diffID, err := v1.NewHash(ent.Layer.DiffID)
	if err != nil {
		return false
	}
	_, ok := e.stepLayer(ent.Layer, d, diffID)
	return ok
}

// stepLayer is the layer of a step entry: the store's blob, or what a LazyStore
// fetches when it is read.
func (e *Engine) stepLayer(l *cache.Layer, digest, diffID v1.Hash) (v1.Layer, bool) {
	if ls, ok := e.opts.Store.(LazyStore); ok {
		return ls.StepLayer(l)
	}
	if !e.opts.Store.HasBlob(digest) {
		return nil, false
	}
	return image.StoreLayer(e.opts.Store, digest, diffID, l.Size, types.MediaType(l.MediaType)), true
}

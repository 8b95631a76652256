// Package solver is the build itself. It walks a parser.Graph, runs the stages the
// target needs (independent stages concurrently, dependencies first), and for every
// instruction either replays it from the step cache or executes it: metadata
// instructions edit the stage's image config, filesystem instructions (RUN, COPY, ADD,
// WORKDIR) run over an overlay snapshot and commit its upper dir as a layer.
//
// Identity: every filesystem step is an Op (op.go), a plain value holding all that can
// change what the step leaves or sees: RUN's argv, env, user, workdir, network,
// security, limits and every mount option; COPY/ADD's sources, the digests of exactly
// what each part selects, destination and flags; WORKDIR's path and user; the
// platform; and the parent's identity. The step's key is the sha256 of the op's
// versioned canonical encoding. After a step the stage's identity is the key and the
// layer's diffID; the committed tree is normalised to its layer (whole-second mtimes,
// no sockets), so a tree executed, cached or unpacked from its layer is one tree.
// Snapshots are named by the step key and the execution, never by layer digest.
// Metadata steps are cheap and deterministic, so they are replayed on every build
// rather than cached; their effect on later steps reaches the keys through the state
// they change. COPY/ADD --link runs on nothing and is keyed without its parent
// (link.go). What an output wants of a layer (another codec, SOURCE_DATE_EPOCH) is an
// export transform of the cached layer (export.go), never part of a key.
//
// Seams: the engine reaches the store, the snapshotter and the sandbox through the
// Store, Snapshotter and Executor interfaces (seams.go).
//
// The solver never prints: progress goes out as Events to a Progress func.
package solver

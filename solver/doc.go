// Package solver is the build itself. It walks a parser.Graph, runs the stages the
// target needs (independent stages concurrently, dependencies first), and for every
// instruction either replays it from the step cache or executes it: metadata
// instructions edit the stage's image config, filesystem instructions (RUN, COPY, ADD,
// WORKDIR) run over an overlay snapshot and commit its upper dir as a layer.
//
// Cache keys chain: each filesystem step's key hashes its parent's key, the expanded
// instruction, the environment it can see, the user and workdir, and for COPY/ADD the
// content digest of what it reads. Metadata steps are cheap and deterministic, so they
// are replayed on every build rather than cached; their effect on later steps reaches
// the keys through the state they change (env, user, workdir, shell). COPY/ADD --link
// is the exception to the chain: its step is copied into an empty snapshot and keyed
// without its parent (link.go). ADD of a URL or a git repository is keyed by what it
// names (content digest, --checksum, commit) and fetched into a temp dir (remote.go,
// git.go).
//
// The solver never prints: progress goes out as Events to a Progress func.
package solver

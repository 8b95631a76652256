// Package dockerfile is kiln's front end: it gives each instruction of a
// parser.Graph its meaning and has the engine (package solver) run the ops it
// becomes. Build runs the stages the target needs concurrently, each waiting for
// the stages it reads; per instruction it expands words against the stage's env
// (ARG scoping, global and platform args, the UndefinedVar check), edits the image
// config for metadata instructions (ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME,
// USER, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD: dispatch.go), and turns RUN
// (run.go: argv through SHELL, heredocs, network, security and entitlements, every
// --mount resolved: mounts.go, cachemount.go, secrets.go, ssh.go), COPY/ADD
// (copy.go: sources from the context, stages, images, named contexts, URLs and
// git via package source, each part keyed by what it selects) and WORKDIR into
// solver ops. The history and diff IDs of the config follow the engine's results.
//
// BuildPlatforms builds one image per target platform (kiln build --platform a,b)
// with one engine: each platform's graph is solved concurrently, each stage's ops are
// of the stage's platform (FROM --platform, its base stage's, else the target's), and
// the engine merges the ops two platforms share, so a stage pinned to $BUILDPLATFORM
// that reads no TARGET* arg runs once. Progress names then start with the stage's
// platform, as BuildKit's.
//
// It runs nothing itself and reaches the store only through the engine (temp dirs,
// cache-mount dirs, the digest memo). Not supported: RUN --security=insecure (kiln
// cannot run a step with every capability yet) and RUN flags other than --mount,
// --network and --security.
package dockerfile

// Package parser turns a Dockerfile into a Graph of build stages for the solver.
//
// It is a thin layer over BuildKit's own Dockerfile front end: the AST comes from
// github.com/moby/buildkit/frontend/dockerfile/parser (directives, line
// continuations, heredocs), typed instructions from .../instructions, and variable
// expansion from .../shell, so kiln reads every file exactly as
// docker/dockerfile:1 does. On top of that it resolves what BuildKit's converter
// resolves before running anything: the global ARGs (with --build-arg overrides
// and the predefined platform args) and the FROM lines they expand, stage names,
// the stages each stage reads (FROM, COPY --from, RUN --mount from=, and ONBUILD
// triggers inherited from a base stage), the target and the stages it needs.
// Instructions are kept unexpanded: their expansion depends on the base image's
// environment, which only the solver knows.
//
// Not supported: frontend images other than docker/dockerfile 1.x named by a
// syntax directive (refused, since kiln runs no frontend images); named build
// contexts (--build-context) standing in for stages; variables in COPY --from
// (refused, as in BuildKit); ONBUILD triggers of image bases (the solver sees
// them only after pulling). Every error is an *Error naming the file and line;
// a panic raised inside buildkit's packages is turned into an error, and any other
// panic (a bug in kiln) is not recovered.
package parser

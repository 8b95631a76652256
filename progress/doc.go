// Package progress shows a build's progress to people and to tools, in the shapes
// BuildKit gives them, so a buildx user reads kiln's the same way:
//
//   - tty: a live view that redraws in place and never scrolls (header on top with the
//     steps done of those known, a line per step cut to the terminal's width, the last
//     lines of running steps), following resizes;
//   - plain: BuildKit's --progress=plain lines ("#3 [stage-0 2/4] RUN make",
//     "#3 0.412 output", "#3 DONE 0.5s"), numbered contiguously;
//   - rawjson: BuildKit's SolveStatus, one JSON object per line;
//   - quiet: warnings only.
//
// A Printer takes the solver's events (Event is a solver.Progress), the tasks of the
// build outside the solver (Task: exporting, pushing) and warnings, and hands them to
// the renderer of its mode.
package progress

#!/usr/bin/env python3
"""The shared bench runner ($SHARED/bench/run.py) with kiln's extra rows W6 and W7.

The shared runner keeps its scenarios per workload in a hard-coded SCENARIOS dict
and is not ours to edit, so this wrapper imports it, adds the rows that
bench/gen_more.py generates, and calls its main() with the same arguments:

  W6  scale: COPY . /app of 200,000 files, ~2 GB    cold, warm, changed
  W7  40 stages, a 39-way COPY --from fan-in         cold, warm

It also lists W6 and W7 after W1..W5 in the summary tables (the shared summary
orders only W1..W5 and would interleave the rest by scenario): the shared summary
is printed for W1..W5, then for each new row.

usage: the shared run.py's (e.g. --builders kiln,buildah,buildkit --workloads W6,W7
       --work DIR --runs 1), or --summarize RESULTS/raw.jsonl
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_BENCH = os.path.abspath(os.path.join(os.environ.get("SHARED") or os.path.join(HERE, "..", "..", "shared"), "bench"))
sys.path.insert(0, SHARED_BENCH)
# loaded by path: this file is run.py too, and sits first on sys.path when run as a script
_spec = importlib.util.spec_from_file_location("shared_run", os.path.join(SHARED_BENCH, "run.py"))
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)

NEW_ROWS = {"W6": ["cold", "warm", "changed"], "W7": ["cold", "warm"]}
shared.SCENARIOS.update(NEW_ROWS)

_summarize = shared.summarize


def summarize(rows):
    """The shared summary, one block for the shared rows, then one per new row."""
    blocks = [[r for r in rows if r.get("workload") not in NEW_ROWS]]
    blocks += [[r for r in rows if r.get("workload") == w] for w in NEW_ROWS]
    return "\n\n".join(_summarize(b) for b in blocks if b)


shared.summarize = summarize  # main() looks it up in its module at call time

if __name__ == "__main__":
    sys.exit(shared.main())

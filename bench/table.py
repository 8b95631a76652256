#!/usr/bin/env python3
"""One markdown table of every bench result (issue 21).

  table.py PATH...            print the table of the result files (JSON lines) named,
                              or of every *.jsonl in each directory named
  table.py add FILE K=V...    append one result line to FILE (the bench scripts use it)

Inputs, one JSON object a line:
  raw.jsonl             the W1-W7 runner (bench/run.py, the shared runner's rows)
  ephemeral.jsonl       bench/ephemeral.sh    \
  rootless.jsonl        bench/rootless.sh      } written through `table.py add`
  multiplatform.jsonl   bench/multiplatform.sh/
Fields read: workload, scenario, builder, rc, total_s (else build_s), rss_kb and
export_rss_kb (peak RSS: the larger), source (absent: the W1-W7 runner), mode
("root" marks rootless.sh's reference rows, which give the ratio column and are not
printed as rows of their own), na (why a cell cannot be measured), error.

A cell is the median of the successful runs; "failed (rc N)" when every run failed;
"n/a: why" when the script said it cannot be measured; "-" when nothing was recorded
(the builder was not asked for, or the runner skipped it: see its "# skipping" line).
"""
import json
import os
import statistics
import sys

BUILDER_ORDER = ["kiln", "buildkit", "buildah"]
LABEL = {"kiln": "kiln", "buildkit": "BuildKit", "buildah": "buildah"}
SOURCE_ORDER = ["run", "ephemeral", "rootless", "multiplatform"]
FILE_ORDER = ["raw.jsonl", "ephemeral.jsonl", "rootless.jsonl", "multiplatform.jsonl"]

NOTES = {
    "run": "W1-W7: bench/run.py (the shared runner): cold = empty store, base pulled from the "
           "local registry; warm = the same build again; changed = one context file edited; "
           "build + OCI tarball export.",
    "ephemeral": "ephemeral (bench/ephemeral.sh): warm-oci = the root that filled the "
                 "registry cache, OCI tarball; cache-from oci / cache-from push = an empty root "
                 "(kiln: new --root; buildah: new --root, --cache-from REPO; BuildKit: after "
                 "`buildctl prune --all`, its daemon stays up) importing the registry cache, "
                 "then an OCI tarball or a push to the registry.",
    "rootless": "rootless (bench/rootless.sh): as a temporary non-root user with subordinate ids, "
                "cold (empty store) and warm, OCI tarball; the note gives rootless / root, "
                "both measured in the same script.",
    "multiplatform": "MP (bench/multiplatform.sh): one cold build for linux/amd64,linux/arm64 "
                     "into one OCI index (arm64 RUN under qemu), buildah: --manifest then "
                     "`manifest push --all` to an OCI archive.",
}


def num(v):
    """K=V values: numbers become numbers ("1.5", ".523" from bc), the rest stay text."""
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v


def add(path, pairs):
    row = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep:
            sys.exit(f"table.py add: {p!r} is not KEY=VALUE")
        row[k] = v if k in ("na", "error", "scenario", "workload", "builder") else num(v)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def files_of(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted(n for n in os.listdir(p) if n.endswith(".jsonl"))
            names.sort(key=lambda n: FILE_ORDER.index(n) if n in FILE_ORDER else len(FILE_ORDER))
            out += [os.path.join(p, n) for n in names]
        elif os.path.exists(p):
            out.append(p)
    return out


def load(paths):
    rows = []
    for f in files_of(paths):
        with open(f) as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    r.setdefault("source", "run")
                    rows.append(r)
    return rows


def seconds(r):
    v = r.get("total_s", r.get("build_s"))
    return float(v) if v is not None else None


def peak_kb(r):
    vals = [r.get(k) for k in ("rss_kb", "export_rss_kb") if isinstance(r.get(k), (int, float))]
    return max(vals) if vals else None


class Cell:
    def __init__(self):
        self.ok, self.failed, self.na = [], [], None

    def median_s(self):
        v = [s for s in (seconds(r) for r in self.ok) if s is not None]
        return statistics.median(v) if v else None

    def median_mb(self):
        v = [k for k in (peak_kb(r) for r in self.ok) if k is not None]
        return statistics.median(v) / 1024 if v else None

    def text_s(self):
        m = self.median_s()
        if m is not None:
            return f"{m:.2f}"
        if self.failed:
            return f"failed (rc {self.failed[-1].get('rc')})"
        if self.na:
            return "n/a: " + self.na.replace("|", "/")  # a | would end the cell
        return "-"

    def text_mb(self):
        m = self.median_mb()
        return f"{m:.0f}" if m is not None else "-"


def table(rows):
    cells, refs, order = {}, {}, []
    builders = set()
    for r in rows:
        key = (r["source"], str(r.get("workload", "?")), str(r.get("scenario", "?")))
        dest = refs if r.get("mode") == "root" else cells
        if key not in cells and key not in order and dest is cells:
            order.append(key)
        b = r.get("builder", "?")
        builders.add(b)
        c = dest.setdefault(key, {}).setdefault(b, Cell())
        if r.get("na"):
            c.na = r["na"]
        elif r.get("rc") == 0:
            c.ok.append(r)
        else:
            c.failed.append(r)
    names = [b for b in BUILDER_ORDER if b in builders] + sorted(builders - set(BUILDER_ORDER))
    order.sort(key=lambda k: SOURCE_ORDER.index(k[0]) if k[0] in SOURCE_ORDER else len(SOURCE_ORDER))

    lab = [LABEL.get(b, b) for b in names]
    out = ["| workload | scenario | runs | " + " | ".join(f"{n} s" for n in lab) + " | "
           + " | ".join(f"{n} MB" for n in lab) + " | kiln ahead? | note |",
           "|---|---|---|" + "---:|" * (2 * len(names)) + "---|---|"]
    failures = []
    for key in order:
        row = cells[key]
        get = lambda b: row.get(b, Cell())  # noqa: E731
        runs = max([len(get(b).ok) for b in names] + [0])
        meds = {b: get(b).median_s() for b in names if get(b).median_s() is not None}
        ahead = "-"
        if "kiln" in meds and len(meds) > 1:
            others = {b: s for b, s in meds.items() if b != "kiln"}
            best = min(others, key=others.get)
            ratio = others[best] / meds["kiln"] if meds["kiln"] else float("inf")
            if ratio > 1:
                ahead = f"yes: {LABEL.get(best, best)} {ratio:.2f}x slower"
            else:
                ahead = f"no: {LABEL.get(best, best)} {1 / ratio:.2f}x faster"
        note = []
        for b in names:
            ref = refs.get(key, {}).get(b)
            if not ref:
                continue
            if ref.median_s() and b in meds:
                note.append(f"{LABEL.get(b, b)} rootless/root {meds[b] / ref.median_s():.2f} (root {ref.median_s():.2f} s)")
            elif ref.median_s():
                note.append(f"{LABEL.get(b, b)} as root {ref.median_s():.2f} s")
            elif ref.failed:
                note.append(f"{LABEL.get(b, b)} as root: {ref.text_s()}")
            for r in ref.failed:
                failures.append(f"- {key[1]} {key[2]} {b} (as root): rc={r.get('rc')} {str(r.get('error', ''))[-300:]!r}")
        out.append(f"| {key[1]} | {key[2]} | {runs} | " + " | ".join(get(b).text_s() for b in names) + " | "
                   + " | ".join(get(b).text_mb() for b in names) + f" | {ahead} | {'; '.join(note)} |")
        for b in names:
            for r in get(b).failed:
                failures.append(f"- {key[1]} {key[2]} {b}: rc={r.get('rc')} {str(r.get('error', ''))[-300:]!r}")
    sources = [s for s in SOURCE_ORDER if any(k[0] == s for k in order)]
    out += ["", "Seconds: median wall time of the successful runs (lower is better); MB: median peak "
            "RSS (kiln and buildah: the largest process of the build, /usr/bin/time; BuildKit: "
            "buildkitd's VmHWM, reset before each build). kiln ahead?: the fastest other builder's "
            "median against kiln's."]
    out += ["- " + NOTES[s] for s in sources if s in NOTES]
    if failures:
        out += ["", "Failures:"] + failures
    return "\n".join(out)


def main(argv):
    if len(argv) >= 2 and argv[0] == "add":
        add(argv[1], argv[2:])
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    rows = load(argv)
    if not rows:
        print("no results in " + " ".join(argv), file=sys.stderr)
        return 1
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

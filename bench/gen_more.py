#!/usr/bin/env python3
"""kiln's extra bench workloads, beside the shared W1..W5 (issue 21).

Writes W6 and W7 under OUTDIR (the --out given to the shared gen.py) and merges
their entries into OUTDIR/workloads.json with the fields gen.py writes (dir,
change_file, files, bytes, tree_sha256).  It reuses gen.py's helpers (write,
fix_mtimes, tree_digest, make_corpus, w2_size, SEED, FIXED_MTIME), imported from
the shared bench dir ($SHARED/bench, or ../shared/bench beside the repo), so the
same seed gives byte-identical trees, modes and mtimes every time.

  W6 scale      10x W2: FROM busybox; COPY . /app of 200,000 files (~2 GB, W2's
                size and text/binary mix) in deeper and wider trees:
                  src/pNN/sN/tN/   36 x 10 x 5 dirs of 100 files  (180,000)
                  src/flat/        one directory of 10,000 files
                  deep/cN/l01/../l25/  8 chains 25 levels deep, 50 files a level
                                                                  (10,000)
                plus an excluded subtree (cache/, 10,000 files, ~100 MB) via
                .dockerignore.  Scenarios cold, warm, changed (one 200-byte
                text file edited).
  W7 stages     40 stages: 39 independent small stages (FROM busybox; one RUN
                writing two small files), a final stage FROM busybox with a
                COPY --from of each (a 39-way fan-in).  The work per step is
                trivial, so the times are the builder's own per-step cost
                (scheduling, one container per RUN, a layer per step).
                Scenarios cold, warm.

usage: gen_more.py [--out DIR] [--registry HOST:PORT] [--only W6,W7]
"""
import argparse
import json
import os
import random
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_BENCH = os.path.join(os.environ.get("SHARED") or os.path.join(HERE, "..", "..", "shared"), "bench")
sys.path.insert(0, os.path.abspath(SHARED_BENCH))
import gen  # noqa: E402  (the shared generator: helpers and seed)

W7_STAGES = 39  # plus the final stage: 40


# ---------------------------------------------------------------- W6
def w6_dirs():
    """(directory, number of files) of W6's context, in generation order."""
    for p in range(36):
        for s in range(10):
            for t in range(5):
                yield f"src/p{p:02d}/s{s}/t{t}", 100
    yield "src/flat", 10_000
    for c in range(8):
        for lvl in range(1, 26):
            yield "deep/c%d/" % c + "/".join(f"l{i:02d}" for i in range(1, lvl + 1)), 50


def gen_w6(d, reg):
    gen.write(f"{d}/Dockerfile", f"FROM {reg}/busybox:latest\nCOPY . /app\n")
    gen.write(f"{d}/.dockerignore", "cache/\n")
    rng = random.Random(gen.SEED + 6)
    corpus = gen.make_corpus(rng, 2 * 1024 * 1024)
    corpus2 = corpus + corpus  # any slice of up to len(corpus) bytes from any offset
    idx = 0
    for sub, n in w6_dirs():
        for _ in range(n):
            size = gen.w2_size(rng)
            is_text = rng.random() < 0.5
            if idx == 0:  # the file edited by the "changed" scenario: small text
                size, is_text = 200, True
            if is_text:
                hdr = f"file {idx} {sub}\n".encode()
                off = rng.randrange(len(corpus))
                need = max(0, size - len(hdr))
                body = corpus2[off:off + need]  # w2_size is at most 1.5 MiB < len(corpus)
                gen.write(f"{d}/{sub}/f{idx:06d}.txt", hdr + body)
            else:
                mode = 0o755 if rng.random() < 0.05 else 0o644
                gen.write(f"{d}/{sub}/f{idx:06d}.bin", rng.randbytes(size), mode)
            idx += 1
    assert idx == 200_000, idx
    # excluded subtree: 10,000 files, ~100 MB, never sent / copied
    for k in range(10_000):
        gen.write(f"{d}/cache/c{k // 100:03d}/blob{k:05d}.bin", rng.randbytes(rng.randint(4096, 16384)))
    return "src/p00/s0/t0/f000000.txt"


# ---------------------------------------------------------------- W7
def gen_w7(d, reg):
    lines = []
    for i in range(1, W7_STAGES + 1):
        lines.append(f"FROM {reg}/busybox:latest AS s{i:02d}")
        lines.append(f"RUN mkdir -p /out && echo stage {i} > /out/s{i:02d}.txt && seq 1 {i * 10} > /out/s{i:02d}.seq")
        lines.append("")
    lines.append(f"FROM {reg}/busybox:latest")
    for i in range(1, W7_STAGES + 1):
        lines.append(f"COPY --from=s{i:02d} /out/ /in/s{i:02d}/")
    gen.write(f"{d}/Dockerfile", "\n".join(lines) + "\n")
    return None


GENS = {"W6": gen_w6, "W7": gen_w7}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.environ.get("ANCHORS_DIR", "/var/tmp/kiln-anchors"), "work"))
    ap.add_argument("--registry", default="127.0.0.1:5000")
    ap.add_argument("--only", default="W6,W7")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    meta_path = os.path.join(a.out, "workloads.json")
    for w in a.only.split(","):
        if w not in GENS:
            print(f"unknown workload {w} (gen_more.py writes {','.join(GENS)})", file=sys.stderr)
            return 2
        d = os.path.join(a.out, w)
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        change = GENS[w](d, a.registry)
        gen.fix_mtimes(d)
        dig, nfiles, nbytes = gen.tree_digest(d)
        # re-read just before writing: gen.py may have written W1..W5 in the meantime
        meta = {}
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
        meta[w] = {"dir": d, "change_file": change, "files": nfiles, "bytes": nbytes, "tree_sha256": dig}
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        print(f"{w}: {nfiles} files, {nbytes/1e6:.1f} MB, tree {dig[:16]}, change_file={change}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

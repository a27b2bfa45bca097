"""Mining speed, memory and IVF-PQ recall on synthetic clustered unit vectors (dim 768).

    python benchmarks/bench_mine.py [--sizes 10000,100000,1000000] [--reference-max 100000]

For each size N (sentences per side; half of one side are noisy translations of the other),
each method runs in its own process so that peak memory (max RSS) is its own:
  exact     our flat index, kNN both ways, vectorised margins and max-mode selection
  ivfpq     our default IVF-PQ index (candidates re-scored exactly) and the same selection
  stages    ccmine's index and mine stages themselves (Beam, index shards, work files), on the
            same vectors stored as float16 embedding shards
  reference faiss flat kNN, then a per-candidate Python loop for margins and selection, as
            LASER's mine_bitexts script does
It prints seconds (ours also by phase), peak RSS, recall of the true top-4 neighbours under
IVF-PQ (exact kNN on a sample of 2,000 queries), the speed-up over the reference measured in the
same run and the share of the reference's pairs that a method also selects. Above
--reference-max the reference's exact kNN would take hours: it is timed on --reference-sample
queries per direction and scaled to N (its cost is linear in the number of queries).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

DIM = 768


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors; y's first n/2 rows are noisy copies of x's first n/2."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(10, n // 200), DIM), dtype=np.float32)

    def noise(count):
        return rng.standard_normal((count, DIM), dtype=np.float32)

    def cloud(count):
        points = centers[rng.integers(0, len(centers), count)]
        for start in range(0, count, 100_000):  # float32 in blocks: 1M x 768 stays 3 GB
            points[start : start + 100_000] += 0.8 * noise(len(points[start : start + 100_000]))
        return points

    x = cloud(n)
    y = cloud(n)
    half = n // 2
    for start in range(0, half, 100_000):
        stop = min(start + 100_000, half)
        y[start:stop] = x[start:stop] + 0.25 * noise(stop - start)
    for arr in (x, y):
        arr /= np.linalg.norm(arr, axis=1, keepdims=True)
    return x, y


def flat_knn(q, db, k=4):
    import faiss

    index = faiss.IndexFlatIP(DIM)
    index.add(db)
    return index.search(q, k)


def reference_mine(x, y, k=4):
    """faiss exact kNN, then LASER-style Python loops over every candidate (ratio, max mode)."""
    x2y_sim, x2y_ind = flat_knn(x, y, k)
    y2x_sim, y2x_ind = flat_knn(y, x, k)
    x_mean, y_mean = x2y_sim.mean(axis=1), y2x_sim.mean(axis=1)
    candidates = []
    for i in range(len(x)):
        best = max(
            range(k), key=lambda c: x2y_sim[i, c] / ((x_mean[i] + y_mean[x2y_ind[i, c]]) / 2)
        )
        j = x2y_ind[i, best]
        candidates.append((x2y_sim[i, best] / ((x_mean[i] + y_mean[j]) / 2), i, j))
    for j in range(len(y)):
        best = max(
            range(k), key=lambda c: y2x_sim[j, c] / ((x_mean[y2x_ind[j, c]] + y_mean[j]) / 2)
        )
        i = y2x_ind[j, best]
        candidates.append((y2x_sim[j, best] / ((x_mean[i] + y_mean[j]) / 2), i, j))
    candidates.sort(key=lambda c: -c[0])
    seen_x, seen_y, pairs = set(), set(), []
    for _score, i, j in candidates:
        if i not in seen_x and j not in seen_y:
            seen_x.add(i)
            seen_y.add(j)
            pairs.append((int(i), int(j)))
    return pairs


def reference_estimate(x, y, sample: int) -> dict:
    """The reference's time on N too large to run: its exact kNN for `sample` queries per
    direction, scaled to all queries (kNN time is linear in the number of queries); the Python
    loop, timed on the sample's candidates, scaled the same way."""
    rows = np.random.default_rng(2).choice(len(x), size=sample, replace=False)
    start = time.perf_counter()
    fwd = flat_knn(x[rows], y)
    bwd = flat_knn(y[rows], x)
    knn_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sims, ids = np.concatenate([fwd[0], bwd[0]]), np.concatenate([fwd[1], bwd[1]])
    means = sims.mean(axis=1)
    for i in range(len(sims)):  # the same per-candidate work as reference_mine's loops
        best = max(
            range(4), key=lambda c: sims[i, c] / ((means[i] + means[ids[i, c] % len(means)]) / 2)
        )
        _ = (sims[i, best], ids[i, best])
    loop_seconds = time.perf_counter() - start
    scale = len(x) / sample
    return {"seconds": (knn_seconds + loop_seconds) * scale, "estimated_from": sample}


def ours(x, y, index_type):
    """Our mining path, timed by phase: train and add (both indexes), search (both ways), select."""
    from indexes import faiss_index
    from mining.margin import Neighbours, select_pairs

    phases = {"train": 0.0, "add": 0.0, "search": 0.0}

    def knn(q, db):
        spec = faiss_index.choose_spec(len(db), DIM, index_type)
        start = time.perf_counter()
        index = faiss_index.train_index(db, spec)
        phases["train"] += time.perf_counter() - start
        start = time.perf_counter()
        for first in range(0, len(db), 100_000):
            faiss_index.add_vectors(index, db[first : first + 100_000])
        faiss_index.set_search_params(index, spec)
        phases["add"] += time.perf_counter() - start
        start = time.perf_counter()
        rerank = db.astype(np.float16) if spec.index_type == "ivfpq" else None
        found = Neighbours(*faiss_index.search(index, q, 4, rerank))  # default candidates
        phases["search"] += time.perf_counter() - start
        return found, spec

    (fwd, spec), (bwd, _) = knn(x, y), knn(y, x)
    start = time.perf_counter()
    pairs = select_pairs(fwd, bwd, "ratio", "max")
    phases["select"] = time.perf_counter() - start
    return list(zip(pairs.src.tolist(), pairs.tgt.tolist(), strict=True)), fwd, spec, phases


def stages(x, y, workdir: str) -> tuple[list, dict]:
    """ccmine's own index and mine stages (Beam, index shards, default parameters, max mode, no
    threshold) on x and y written as float16 embedding shards of 100,000 rows; writing them is
    not timed."""
    import pyarrow as pa

    from mining.embedding_store import ID_SCHEMA, write_shard
    from pipelines import index, mine
    from pipelines.stage_dir import StageWriter

    run = os.path.join(workdir, f"stages-{len(x)}")
    writer = StageWriter(run, "embeddings")
    for lang, vectors in (("de", x), ("en", y)):
        for shard, start in enumerate(range(0, len(vectors), 100_000)):
            rows = np.arange(start, min(start + 100_000, len(vectors)))
            ids = pa.table(
                {
                    "hash": rows,
                    "text": [f"{lang} {i}" for i in rows.tolist()],
                    "url": [""] * len(rows),
                    "record_id": [""] * len(rows),
                    "position": np.zeros(len(rows), np.int32),
                },
                schema=ID_SCHEMA,
            )
            write_shard(writer.path(f"lang={lang}"), shard, vectors[rows].astype(np.float16), ids)
    writer.commit({}, {"encoder": "synthetic"})
    phases = {}
    start = time.perf_counter()
    index.run(run, ["de", "en"])
    phases["index"] = time.perf_counter() - start
    start = time.perf_counter()
    mine.run(run, "de", "en", threshold=-1e9)
    phases["mine"] = time.perf_counter() - start
    table = mine.read_bitext(os.path.join(run, "bitext", "de-en"))
    pairs = list(zip(table["src_hash"].to_pylist(), table["tgt_hash"].to_pylist(), strict=True))
    return pairs, phases


def true_top4(queries: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact top-4 neighbour ids (unordered) of each query in y, 100 x N similarities at a time."""
    out = np.empty((len(queries), 4), dtype=np.int64)
    for start in range(0, len(queries), 100):
        sims = queries[start : start + 100] @ y.T
        out[start : start + 100] = np.argpartition(-sims, 4, axis=1)[:, :4]
    return out


def share_found(true: np.ndarray, found: np.ndarray) -> float:
    """Share of the true top-4 ids among the found ones, over all queries."""
    hits = sum(len(set(t) & set(f)) for t, f in zip(true, found, strict=True))
    return hits / true.size


def recall_at_4(x, y, found_ids, sample=2000) -> float:
    """Share of the true top-4 neighbours (exact, on a sample of queries) that were found."""
    rows = np.random.default_rng(1).choice(len(x), size=min(sample, len(x)), replace=False)
    return share_found(true_top4(x[rows], y), found_ids[rows])


def worker(method: str, n: int, pairs_file: str, reference_sample: int) -> dict:
    import faiss  # noqa: F401  (imports are not part of the timing)

    from indexes import faiss_index  # noqa: F401
    from mining.margin import select_pairs  # noqa: F401

    x, y = synthetic(n)
    start = time.perf_counter()
    result: dict = {"method": method, "n": n}
    if method == "reference" and reference_sample:
        result.update(reference_estimate(x, y, reference_sample))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return result
    if method == "reference":
        pairs = reference_mine(x, y)
    elif method == "stages":
        pairs, phases = stages(x, y, os.path.dirname(pairs_file))
        result["index"] = "ccmine index + mine stages (Beam, default index)"
        result["phases"] = {k: round(v, 1) for k, v in phases.items()}
    else:
        pairs, fwd, spec, phases = ours(x, y, "flat" if method == "exact" else "ivfpq")
        result["index"] = spec.factory() + (f" nprobe={spec.nprobe}" if spec.nprobe else "")
        result["phases"] = {k: round(v, 1) for k, v in phases.items()}
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if method == "ivfpq":
        result["recall_at_4"] = recall_at_4(x, y, fwd.ids)
    np.save(pairs_file, np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    result["pairs"] = len(pairs)
    result["correct"] = sum(1 for i, j in pairs if i == j and i < n // 2)
    return result


def run_in_process(method: str, n: int, workdir: str, reference_sample: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(n), workdir, str(reference_sample)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def shared_share(pairs_file: str, reference_file: str) -> float:
    """Share of the reference's pairs that a method also selected."""
    mine = {tuple(p) for p in np.load(pairs_file).tolist()}
    ref = [tuple(p) for p in np.load(reference_file).tolist()]
    return sum(p in mine for p in ref) / max(len(ref), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument(
        "--reference-max",
        type=int,
        default=100_000,
        help="above this N the reference runs on a query sample (estimated)",
    )
    parser.add_argument("--reference-sample", type=int, default=10_000)
    parser.add_argument("--exact-max", type=int, default=100_000)
    parser.add_argument("--methods", default="reference,exact,ivfpq,stages")
    parser.add_argument("--worker", nargs=4)
    args = parser.parse_args()
    if args.worker:
        method, n, workdir, sample = args.worker
        pairs_file = os.path.join(workdir, f"{method}-{n}.npy")
        print(json.dumps(worker(method, int(n), pairs_file, int(sample))))
        return
    print(
        f"{'N':>9} {'method':>9} {'seconds':>9} {'peak MB':>8} {'pairs':>8} {'correct':>8} "
        f"{'recall@4':>9}  notes"
    )
    with tempfile.TemporaryDirectory() as workdir:
        for n in (int(s) for s in args.sizes.split(",")):
            results = {}
            for method in args.methods.split(","):
                if method == "exact" and n > args.exact_max:
                    continue
                sample = args.reference_sample if n > args.reference_max else 0
                results[method] = r = run_in_process(
                    method, n, workdir, sample if method == "reference" else 0
                )
                notes = r.get("index", "faiss IndexFlatIP + Python loop")
                if "estimated_from" in r:
                    notes += f"; estimated from {r['estimated_from']:,} queries per direction"
                if "phases" in r:
                    notes += " (" + ", ".join(f"{k} {v}s" for k, v in r["phases"].items()) + ")"
                ref = results.get("reference")
                if method != "reference" and ref:
                    notes += f"; {ref['seconds'] / r['seconds']:.1f}x faster than reference"
                    if "pairs" in ref:
                        share = shared_share(
                            os.path.join(workdir, f"{method}-{n}.npy"),
                            os.path.join(workdir, f"reference-{n}.npy"),
                        )
                        notes += f", {share:.2%} of its pairs"
                recall = f"{r['recall_at_4']:.3f}" if "recall_at_4" in r else "-"
                print(
                    f"{n:>9} {method:>9} {r['seconds']:>9.1f} {r['peak_rss_mb']:>8.0f} "
                    f"{r.get('pairs', '-'):>8} {r.get('correct', '-'):>8} {recall:>9}  {notes}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Mining speed, memory and IVF-PQ recall on synthetic clustered unit vectors (dim 768).

    python benchmarks/bench_mine.py [--sizes 10000,100000,1000000] [--reference-max 100000]

For each size N (sentences per side; half of one side are noisy translations of the other),
each method runs in its own process so that peak memory (max RSS) is its own:
  exact     our flat index, kNN both ways, vectorised margins and max-mode selection
  ivfpq     our default IVF-PQ index (candidates re-scored exactly) and the same selection
  reference faiss flat kNN, then a per-candidate Python loop for margins and selection, as
            LASER's mine_bitexts script does
It prints seconds, peak RSS, recall of the true top-4 neighbours under IVF-PQ (exact kNN on a
sample of 2,000 queries) and the speed-up over the reference, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

DIM = 768


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors; y's first n/2 rows are noisy copies of x's first n/2."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(10, n // 200), DIM)).astype(np.float32)

    def cloud(count):
        points = centers[rng.integers(0, len(centers), count)]
        points += 0.8 * rng.normal(size=(count, DIM)).astype(np.float32)
        return points

    x = cloud(n)
    y = cloud(n)
    half = n // 2
    y[:half] = x[:half] + 0.25 * rng.normal(size=(half, DIM)).astype(np.float32)
    for arr in (x, y):
        arr /= np.linalg.norm(arr, axis=1, keepdims=True)
    return x, y


def reference_mine(x, y, k=4):
    """faiss exact kNN, then LASER-style Python loops over every candidate (ratio, max mode)."""
    import faiss

    def knn(q, db):
        index = faiss.IndexFlatIP(DIM)
        index.add(db)
        return index.search(q, k)

    x2y_sim, x2y_ind = knn(x, y)
    y2x_sim, y2x_ind = knn(y, x)
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


def ours(x, y, index_type):
    from indexes import faiss_index
    from mining.margin import Neighbours, select_pairs

    def knn(q, db):
        spec = faiss_index.choose_spec(len(db), DIM, index_type)
        index = faiss_index.build_index(db, spec)
        rerank = db.astype(np.float16) if spec.index_type == "ivfpq" else None
        return Neighbours(*faiss_index.search(index, q, 4, rerank)), spec  # default candidates

    (fwd, spec), (bwd, _) = knn(x, y), knn(y, x)
    pairs = select_pairs(fwd, bwd, "ratio", "max")
    return list(zip(pairs.src.tolist(), pairs.tgt.tolist(), strict=True)), fwd, spec


def worker(method: str, n: int) -> dict:
    import faiss  # noqa: F401  (imports are not part of the timing)

    from indexes import faiss_index  # noqa: F401
    from mining.margin import select_pairs  # noqa: F401

    x, y = synthetic(n)
    start = time.perf_counter()
    result: dict = {"method": method, "n": n}
    if method == "reference":
        pairs = reference_mine(x, y)
    else:
        pairs, fwd, spec = ours(x, y, "flat" if method == "exact" else "ivfpq")
        result["index"] = spec.factory()
        if method == "ivfpq":
            rows = np.random.default_rng(1).choice(n, size=min(2000, n), replace=False)
            true = np.argsort(-(x[rows] @ y.T), axis=1)[:, :4]
            found = fwd.ids[rows]
            result["recall_at_4"] = float(
                np.mean([len(set(t) & set(f)) / 4 for t, f in zip(true, found, strict=True)])
            )
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["pairs"] = len(pairs)
    result["pairs_hash"] = hash(tuple(sorted(pairs)))
    result["correct"] = sum(1 for i, j in pairs if i == j and i < n // 2)
    return result


def run_in_process(method: str, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(n)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--reference-max", type=int, default=100_000)
    parser.add_argument("--exact-max", type=int, default=100_000)
    parser.add_argument("--methods", default="reference,exact,ivfpq")
    parser.add_argument("--worker", nargs=2)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return
    print(
        f"{'N':>9} {'method':>9} {'seconds':>9} {'peak MB':>8} {'pairs':>8} {'correct':>8} "
        f"{'recall@4':>9}  notes"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        results = {}
        for method in args.methods.split(","):
            if method == "reference" and n > args.reference_max:
                continue
            if method == "exact" and n > args.exact_max:
                continue
            results[method] = r = run_in_process(method, n)
            notes = r.get("index", "faiss IndexFlatIP + Python loop")
            if method != "reference" and "reference" in results:
                ref = results["reference"]
                notes += f"; {ref['seconds'] / r['seconds']:.1f}x faster than reference"
                if method == "exact":
                    notes += (
                        ", same pairs"
                        if r["pairs_hash"] == ref["pairs_hash"]
                        else ", DIFFERENT pairs"
                    )
            recall = f"{r['recall_at_4']:.3f}" if "recall_at_4" in r else "-"
            print(
                f"{n:>9} {method:>9} {r['seconds']:>9.1f} {r['peak_rss_mb']:>8.0f} "
                f"{r['pairs']:>8} {r['correct']:>8} {recall:>9}  {notes}",
                flush=True,
            )


if __name__ == "__main__":
    main()

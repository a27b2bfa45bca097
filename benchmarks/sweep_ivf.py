"""IVF index settings against recall and time, on bench_mine's synthetic data (dim 768).

    python benchmarks/sweep_ivf.py --n 100000 --factories IVF1024,PQ96np IVF1024,PQ192x4fsr \
        --nprobes 32,64 --candidates 32,64

One direction (x queries y). For each factory string the index is trained and filled once; each
(nprobe, candidates) setting then searches a sample of queries, re-scores the candidates exactly
as the miner does, and reports the recall of the true top-4 and the search time scaled to all
N queries. This is how the defaults in indexes/faiss_index.py were chosen.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
from bench_mine import DIM, share_found, synthetic, true_top4

from indexes import faiss_index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--factories", nargs="+", required=True)
    parser.add_argument("--nprobes", default="16,32,64")
    parser.add_argument("--candidates", default="32,64")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--train-per-list", type=int, default=64)
    args = parser.parse_args()
    x, y = synthetic(args.n)
    rows = np.random.default_rng(3).choice(args.n, size=min(args.queries, args.n), replace=False)
    queries = x[rows]
    truth = true_top4(queries, y)
    rerank = y.astype(np.float16)
    print(
        f"{'factory':>22} {'nprobe':>6} {'cand':>5} {'train s':>8} {'add s':>7} "
        f"{'search s (all N)':>17} {'recall@4':>9}"
    )
    for factory in args.factories:
        index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
        nlist = faiss.extract_index_ivf(index).nlist
        sample = y[
            np.random.default_rng(0).choice(
                args.n, min(args.n, args.train_per_list * nlist), replace=False
            )
        ]
        start = time.perf_counter()
        index.train(sample)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        index.add(y)
        add_s = time.perf_counter() - start
        for nprobe in (int(v) for v in args.nprobes.split(",")):
            faiss.extract_index_ivf(index).nprobe = nprobe
            for cand in (int(v) for v in args.candidates.split(",")):
                start = time.perf_counter()
                _, ids = faiss_index.search(index, queries, 4, rerank, cand)
                search_s = (time.perf_counter() - start) * args.n / len(queries)
                recall = share_found(truth, ids)
                print(
                    f"{factory:>22} {nprobe:>6} {cand:>5} {train_s:>8.1f} {add_s:>7.1f} "
                    f"{search_s:>17.1f} {recall:>9.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

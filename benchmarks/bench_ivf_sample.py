"""IVF-PQ recall with the training sample drawn from every embedding shard or from a spread.

    python benchmarks/bench_ivf_sample.py [--n 400000] [--shard-rows 2000] [--nlist 256]

On bench_mine's synthetic data (768-d, clustered), y is cut into embedding shards of
--shard-rows rows and indexed with the index stage's settings (4-bit fast-scan PQ, --nlist
lists), the training sample drawn as its workers draw it (`pipelines/index.sample_counts`):
  every shard  rows from every shard, in proportion to its size (the stage's way for embeddings
               dropped in by hand)
  spread       rows from shards spread evenly over the language, holding SAMPLE_SPREAD times
               the sample (its way for the shards the embed stage writes)
each with y's rows in two orders: as the embed stage writes them (shards cut by sentence hash:
each shard a random subset) and sorted by cluster (a worst case for embeddings dropped in by
hand: each shard holds few clusters). Prints the shards read, their rows, and recall@4 of x's
queries (the true top-4 among the 4 found after re-scoring 32 candidates), against every
shard's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from bench_mine import share_found, synthetic, true_top4

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexes import faiss_index  # noqa: E402
from mining.embedding_store import ShardLayout  # noqa: E402
from pipelines import index as index_stage  # noqa: E402


def drawn_sample(y: np.ndarray, shard_rows: int, size: int, spread: bool) -> tuple[np.ndarray, int]:
    """The training sample the index stage's workers draw from y cut into shards; and how many
    shards it reads."""
    starts = tuple(range(0, len(y), shard_rows)) + (len(y),)
    names = tuple(str(n) for n in range(len(starts) - 1))
    layout = ShardLayout("xx", names, names, starts, y.shape[1])
    pieces = []
    for number, count in enumerate(index_stage.sample_counts(layout, size, spread)):
        if count:
            shard = y[starts[number] : starts[number + 1]]
            pieces.append(index_stage.drawn_rows(shard, number, count))
    return np.concatenate(pieces), len(pieces)


def recall(y, queries, truth, spec, sample) -> tuple[float, float]:
    start = time.perf_counter()
    index = faiss_index.train_index(sample, spec)
    for block in range(0, len(y), 100_000):
        faiss_index.add_vectors(index, y[block : block + 100_000])
    faiss_index.set_search_params(index, spec)
    _, ids = faiss_index.search(index, queries, 4, y.astype(np.float16), 32)
    return share_found(truth, ids), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400_000)
    parser.add_argument("--shard-rows", type=int, default=2_000)
    parser.add_argument("--nlist", type=int, default=256)
    parser.add_argument("--queries", type=int, default=2_000)
    args = parser.parse_args()
    x, y = synthetic(args.n)
    spec = faiss_index.choose_spec(args.n, y.shape[1], "ivfpq", nlist=args.nlist)
    size = faiss_index.sample_size(spec, args.n)
    print(f"{args.n:,} rows in shards of {args.shard_rows:,}, {spec.factory()}, sample {size:,}")
    print(f"{'order':>8} {'sample from':>12} {'shards':>7} {'rows':>9} {'recall@4':>9} {'s':>6}")
    for order in ("hash", "cluster"):
        if order == "cluster":  # rows grouped by their IVF list, the lists in a random order
            trained = faiss_index.train_index(y, spec)  # kept: the quantizer lives in it
            quantizer = faiss_index.faiss.extract_index_ivf(trained).quantizer
            lists = faiss_index.faiss.downcast_index(quantizer).search(y, 1)[1].ravel()
            rank = np.random.default_rng(5).permutation(args.nlist)[lists]
            y = y[np.argsort(rank, kind="stable")]
        else:
            y = y[np.random.default_rng(4).permutation(args.n)]
        queries = x[np.random.default_rng(3).choice(args.n, args.queries, replace=False)]
        truth = true_top4(queries, y)
        base = None
        for name, spread in (("every shard", False), ("spread", True)):
            sample, shards = drawn_sample(y, args.shard_rows, size, spread)
            found, seconds = recall(y, queries, truth, spec, sample)
            base = base if base is not None else found
            read = min(args.n, shards * args.shard_rows)
            print(
                f"{order:>8} {name:>12} {shards:>7} {read:>9,} {found:>9.4f} {seconds:>6.1f}"
                f"  ({found - base:+.4f})"
            )


if __name__ == "__main__":
    main()

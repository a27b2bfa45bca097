"""One mine work item at 768 dimensions: a query shard searched in one index shard, by shard size.

    python benchmarks/bench_item.py [--shard-sizes 250000,500000,1000000] [--queries 100000]

For each index-shard size S (synthetic clustered unit vectors, as bench_mine.py), in its own
process: train the default IVF-PQ for S rows (what `ccmine index` does per language), add S
rows, then search one query shard the way a mine worker does (the index shard and its float16
exact vectors loaded, candidates re-scored). Prints seconds per phase, the worker's peak RSS,
and the search rate in query x index-row pairs per second, whose ratio to the smallest shard
shows what a larger shard saves; these rates size a billion-sentence run (README).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DIM = 768


def child(shard_size: int, queries: int) -> None:
    from bench_mine import synthetic

    from indexes import faiss_index
    from indexes.shards import SHARD_SIZE

    x, y = synthetic(max(shard_size, queries))
    index_rows, query_rows = y[:shard_size], x[:queries]
    del x
    spec = faiss_index.choose_spec(shard_size, DIM, "ivfpq", shard_size=SHARD_SIZE)
    start = time.perf_counter()
    index = faiss_index.train_index(index_rows, spec)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    for begin in range(0, shard_size, 100_000):
        faiss_index.add_vectors(index, index_rows[begin : begin + 100_000])
    added = time.perf_counter() - start
    exact = index_rows.astype(np.float16)
    del index_rows, y
    index = faiss_index.ready_to_search(index, spec)
    start = time.perf_counter()
    faiss_index.search(index, query_rows, 4, exact, faiss_index.CANDIDATES)
    searched = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "factory": spec.factory(),
                "nprobe": spec.nprobe,
                "train_s": trained,
                "add_s": added,
                "search_s": searched,
                "peak": peak,
                "index_bytes": faiss_index.faiss.serialize_index(index).nbytes,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shard-sizes", default="250000,500000,1000000")
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child, options.queries)
        return
    rows = []
    for size in (int(s) for s in options.shard_sizes.split(",")):
        command = [
            sys.executable,
            __file__,
            "--child",
            str(size),
            "--queries",
            str(options.queries),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append((size, json.loads(done.stdout.strip().splitlines()[-1])))
    base_rate = None
    print(
        f"{'shard rows':>10} {'index':24} {'train s':>8} {'add s':>7} {'search s':>9} "
        f"{'peak GB':>8} {'codes MB':>9} {'pairs/s':>10} {'x smallest':>10}"
    )
    for size, r in rows:
        rate = options.queries * size / r["search_s"]
        base_rate = base_rate or rate
        print(
            f"{size:>10,} {r['factory'] + ' np' + str(r['nprobe']):24} {r['train_s']:>8.1f} "
            f"{r['add_s']:>7.1f} {r['search_s']:>9.1f} {r['peak'] / 2**30:>8.2f} "
            f"{r['index_bytes'] / 2**20:>9.0f} {rate:>10.2e} {rate / base_rate:>10.2f}"
        )


if __name__ == "__main__":
    main()

"""One mine work item at 768 dimensions: a query shard searched in one index shard, by shard size.

    python benchmarks/bench_item.py [--shard-sizes 250000,500000,1000000] [--queries 100000]

For each index-shard size S (synthetic clustered unit vectors, as bench_mine.py): one process
trains the default IVF-PQ for S rows (what `ccmine index` does per language) and adds S rows,
and writes the index shard, its float16 exact vectors and a query shard to files; a second
process then does what a mine worker does with one work item (loads the three, searches,
re-scores the candidates), so its peak RSS is a worker's. Prints seconds per phase, that peak,
and the search rate in query x index-row pairs per second, whose ratio to the smallest shard
shows what a larger shard saves; these rates size a billion-sentence run (README).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_memory import peak_rss  # noqa: E402

DIM = 768


def build(shard_size: int, queries: int, work: str) -> dict:
    from bench_mine import synthetic

    from indexes import faiss_index
    from indexes.shards import SHARD_SIZE

    x, y = synthetic(max(shard_size, queries))
    index_rows = y[:shard_size]
    spec = faiss_index.choose_spec(shard_size, DIM, "ivfpq", shard_size=SHARD_SIZE)
    start = time.perf_counter()
    index = faiss_index.train_index(index_rows, spec)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    for begin in range(0, shard_size, 100_000):
        faiss_index.add_vectors(index, index_rows[begin : begin + 100_000])
    added = time.perf_counter() - start
    np.save(f"{work}/exact.npy", index_rows.astype(np.float16))
    np.save(f"{work}/queries.npy", x[:queries].astype(np.float16))
    size = faiss_index.write_index(index, f"{work}/shard.faiss")
    return {
        "spec": spec.as_dict(),
        "factory": spec.factory(),
        "nprobe": spec.nprobe,
        "train_s": trained,
        "add_s": added,
        "index_bytes": size,
    }


def search(work: str, spec: dict) -> dict:
    """One work item as a mine worker does it: load, search, re-score."""
    from indexes import faiss_index

    start = time.perf_counter()
    index = faiss_index.ready_to_search(
        faiss_index.load_index(f"{work}/shard.faiss"), faiss_index.IndexSpec(**spec)
    )
    exact = np.load(f"{work}/exact.npy")
    queries = np.load(f"{work}/queries.npy")
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    faiss_index.search(index, queries, 4, exact, faiss_index.CANDIDATES)
    searched = time.perf_counter() - start
    return {"load_s": loaded, "search_s": searched, "peak": peak_rss()}


def child(step: str, size: int, queries: int, work: str, spec: str) -> None:
    if step == "build":
        print(json.dumps(build(size, queries, work)))
    else:
        print(json.dumps(search(work, json.loads(spec))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shard-sizes", default="250000,500000,1000000")
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        step, size, queries, work, spec = options.child
        child(step, int(size), int(queries), work, spec)
        return
    rows = []
    for size in (int(s) for s in options.shard_sizes.split(",")):
        with tempfile.TemporaryDirectory() as work:

            def run(step, spec="{}", size=size, work=work):
                command = [sys.executable, __file__, "--child", step, str(size)]
                command += [str(options.queries), work, spec]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                return json.loads(done.stdout.strip().splitlines()[-1])

            built = run("build")
            rows.append((size, {**built, **run("search", json.dumps(built["spec"]))}))
    base_rate = None
    print(
        f"{'shard rows':>10} {'index':24} {'train s':>8} {'add s':>7} {'load s':>7} "
        f"{'search s':>9} {'worker GB':>9} {'codes MB':>9} {'pairs/s':>10} {'x smallest':>10}"
    )
    for size, r in rows:
        rate = options.queries * size / r["search_s"]
        base_rate = base_rate or rate
        print(
            f"{size:>10,} {r['factory'] + ' np' + str(r['nprobe']):24} {r['train_s']:>8.1f} "
            f"{r['add_s']:>7.1f} {r['load_s']:>7.1f} {r['search_s']:>9.1f} "
            f"{r['peak'] / 2**30:>9.2f} "
            f"{r['index_bytes'] / 2**20:>9.0f} {rate:>10.2e} {rate / base_rate:>10.2f}"
        )


if __name__ == "__main__":
    main()

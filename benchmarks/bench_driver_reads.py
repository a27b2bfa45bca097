"""What the `ccmine` command itself reads to learn a language's embedding layout, on Cloud Storage.

    python benchmarks/bench_driver_reads.py [--shards 24] [--rows 12000] [--dim 768] [--rounds 3]

Writes one language's embedding shards (--rows x --dim float16 each; the embed stage's default
is 100,000 rows, so real shards are larger) into a GCS emulator on loopback (gcp-storage-emulator,
in this process), then in --rounds rounds times `shard_layout` both ways, keeping each one's
fastest run:
  headers  without the layout file: each shard's .npy header is read (the way before it)
  layout   with the layout file the embed stage writes
and prints the requests the emulator answered, the bytes it sent, per shard, and seconds. Bytes
and requests are what Cloud Storage would serve; the seconds are the emulator's on this
machine's loopback, not Cloud Storage's latency (tens of ms a request), so they understate
what a request costs there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apache_beam.io.filesystems import FileSystems  # noqa: E402

from mining.embedding_store import (  # noqa: E402
    ID_SCHEMA,
    LAYOUT_NAME,
    lang_dir,
    shard_layout,
    write_layout,
    write_shard,
)
from tests.gcs_emulator import gcs_bucket, served  # noqa: E402


def ids(rows: int) -> pa.Table:
    return pa.table(
        {
            "hash": np.arange(rows),
            "text": ["s"] * rows,
            "url": ["u"] * rows,
            "record_id": ["r"] * rows,
            "position": np.zeros(rows, np.int32),
        },
        schema=ID_SCHEMA,
    )


def timed_layout(embeddings: str) -> dict:
    with served() as traffic:
        start = time.perf_counter()
        layout = shard_layout(embeddings, "de")
        seconds = time.perf_counter() - start
    return {**traffic, "seconds": seconds, "starts": layout.starts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=24)
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    vectors = np.zeros((args.rows, args.dim), np.float16)
    monkeypatch = pytest.MonkeyPatch()
    with gcs_bucket(monkeypatch) as root:
        embeddings = f"{root}/run/embeddings"
        directory = lang_dir(embeddings, "de")
        records = [write_shard(directory, i, vectors, ids(args.rows)) for i in range(args.shards)]
        best: dict = {}
        for _ in range(args.rounds):
            for method in ("headers", "layout"):
                layout_file = FileSystems.join(directory, LAYOUT_NAME)
                if method == "layout":
                    write_layout(directory, records)
                elif FileSystems.exists(layout_file):
                    FileSystems.delete([layout_file])
                run = timed_layout(embeddings)
                if method not in best or run["seconds"] < best[method]["seconds"]:
                    best[method] = run
    monkeypatch.undo()
    assert best["headers"]["starts"] == best["layout"]["starts"]
    shard_mb = records[0]["bytes"] / 2**20
    print(f"{args.shards} shards of {args.rows:,} x {args.dim} float16 ({shard_mb:.1f} MiB each)")
    heads = ("method", "requests", "MiB sent", "KiB/shard", "seconds", "x")
    print(
        " ".join(f"{head:>{width}}" for head, width in zip(heads, (8, 9, 9, 10, 8, 6), strict=True))
    )
    for method, run in best.items():
        print(
            f"{method:>8} {run['requests']:>9} {run['bytes'] / 2**20:>9.1f} "
            f"{run['bytes'] / 1024 / args.shards:>10.1f} {run['seconds']:>8.3f} "
            f"{run['seconds'] / best['headers']['seconds']:>6.3f}"
        )


if __name__ == "__main__":
    main()

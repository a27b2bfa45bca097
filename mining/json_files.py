"""Small JSON files (stage markers, shard and work-unit records) on any Beam file system, and
many of them read at once.

Before it starts a job, the `ccmine` command reads such records: every index shard's, every
work unit's a killed run finished. On Cloud Storage each read is a round trip, so 10,000 of them
read one after another take minutes. Threads spend that time waiting on the network, so a pool
of them reads many at once (benchmarks/bench_record_reads.py). Beam's GCS file system makes a
new storage client and connection for every call and asks for an object's metadata before its
bytes (3 requests and about 12 ms of CPU a record), so on gs:// each reading thread keeps one
client and downloads a record in one request (about 3 ms).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from apache_beam.io.filesystems import FileSystems

THREADS = 16  # reads in flight at once

A = TypeVar("A")
T = TypeVar("T")


def write_json(path: str, payload: dict) -> None:
    with FileSystems.create(path) as out:
        out.write(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False).encode())


def read_json(path: str) -> dict:
    with FileSystems.open(path) as stream:
        return json.loads(stream.read().decode())


def read_json_files(paths: Sequence[str]) -> list[dict]:
    """The JSON of each file, read concurrently."""
    clients = threading.local()  # a storage client per reading thread, for this call only

    def read(path: str) -> dict:
        if not path.startswith("gs://"):
            return read_json(path)
        if not hasattr(clients, "client"):
            from apache_beam.io.gcp import gcsio  # 0.3 s to import, only for gs://

            clients.client = gcsio.GcsIO().client  # with the credentials Beam finds
        bucket, name = path.removeprefix("gs://").split("/", 1)
        return json.loads(clients.client.bucket(bucket).blob(name).download_as_bytes().decode())

    return read_concurrently(read, paths)


def read_concurrently(
    read: Callable[[A], T], items: Sequence[A], threads: int | None = None
) -> list[T]:
    """[read(item) for item in items], up to `threads` (THREADS) at a time; the error of the
    first item that fails is raised, and the reads not yet started are cancelled."""
    threads = min(threads or THREADS, len(items))
    if threads < 2:
        return [read(item) for item in items]
    pool = ThreadPoolExecutor(threads, thread_name_prefix="ccmine-read")
    try:
        return list(pool.map(read, items))
    finally:
        pool.shutdown(cancel_futures=True)

"""Small JSON files (stage markers, shard and work-unit records) on any Beam file system, and
many of them read at once.

Before it starts a job, the `ccmine` command reads such records: every index shard's, every
work unit's a killed run finished. On Cloud Storage each read is a round trip, so 10,000 of them
read one after another take minutes. Threads spend that time waiting on the network, so a pool
of them reads many at once (benchmarks/bench_record_reads.py), each record in one request
(mining/whole_files.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mining.whole_files import read_bytes, write_bytes

THREADS = 16  # reads in flight at once

log = logging.getLogger("ccmine")

A = TypeVar("A")
T = TypeVar("T")


def write_json(path: str, payload: dict) -> None:
    write_bytes(path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False).encode())


class DamagedJson(ValueError):
    """A JSON record (marker, stats, unit record) that does not parse; the message names it."""


def read_json(path: str) -> dict:
    """The JSON in PATH; damaged content is a DamagedJson error that names the file."""
    try:
        return json.loads(read_bytes(path).decode())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DamagedJson(f"{path}: not a JSON record ({exc})") from exc


def read_json_files(paths: Sequence[str]) -> list[dict]:
    """The JSON of each file, read concurrently."""
    return read_concurrently(read_json, paths)


def read_unit_records(paths: Sequence[str]) -> list[dict | None]:
    """The records of finished work units, read concurrently; a damaged one (cut short by a
    run killed while writing it) is None, with a warning naming it: its unit is done again."""
    return read_concurrently(_read_unit_record, paths)


def _read_unit_record(path: str) -> dict | None:
    try:
        return read_json(path)
    except ValueError as exc:
        log.warning("%s; its unit is done again", exc)
        return None


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

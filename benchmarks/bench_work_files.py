"""What writing, reading and deleting the mine stage's work files costs when each request is a
round trip.

    python benchmarks/bench_work_files.py [--files 300] [--kib 64] [--latency-ms 5] [--rounds 2]

The mine stage passes blocks between its steps as files in its work directory
(pipelines/work_files.py), thousands of them on a large run, and deletes them all when it
commits. This writes --files blocks of --kib KiB each, reads them back, one after another as a
worker does, and deletes them (one call for all, as the stage does), in a GCS emulator in
another process that answers every request --latency-ms late (a model of Cloud Storage's round
trips, not a measurement of them), two ways, keeping each one's fastest of --rounds: through
Beam's file system (FileSystems.create, .open and .delete, the baseline) and through
mining/whole_files.py (one storage client per thread, one request each way, deletions in
batches of 100). It prints the requests the emulator answered, the seconds, this process's CPU
seconds and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apache_beam.io.filesystems import FileSystems  # noqa: E402

from mining import whole_files  # noqa: E402
from tests.gcs_emulator import distant_gcs_bucket  # noqa: E402


def beam_write(path: str, data: bytes) -> None:
    with FileSystems.create(path) as out:
        out.write(data)


def beam_read(path: str) -> bytes:
    with FileSystems.open(path) as stream:
        return stream.read()


def timed(requests, work, *args) -> dict:
    before, start, cpu = requests.value, time.perf_counter(), time.process_time()
    list(map(work, *args))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"requests": requests.value - before, "seconds": seconds, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--kib", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    blocks = [os.urandom(args.kib * 1024) for _ in range(args.files)]
    ways = {
        "Beam file system": (beam_write, beam_read, FileSystems.delete),
        "whole_files": (whole_files.write_bytes, whole_files.read_bytes, whole_files.delete_files),
    }
    monkeypatch = pytest.MonkeyPatch()
    best: dict = {}
    with distant_gcs_bucket(monkeypatch, args.latency_ms / 1000) as (root, requests):
        for round_ in range(args.rounds):
            for way, (write, read, delete) in ways.items():
                paths = [f"{root}/{way[:4]}-{round_}/{n:05d}.pkl" for n in range(len(blocks))]
                runs = {
                    "write": timed(requests, write, paths, blocks),
                    "read": timed(requests, read, paths),
                }
                assert [read(path) for path in paths[:3]] == blocks[:3]
                runs["delete"] = timed(requests, delete, [paths])
                assert not FileSystems.match([f"{root}/{way[:4]}-{round_}/**"])[0].metadata_list
                for step, run in runs.items():
                    if (step, way) not in best or run["seconds"] < best[step, way]["seconds"]:
                        best[step, way] = run
    monkeypatch.undo()
    print(f"{args.files} files of {args.kib} KiB, {args.latency_ms:g} ms a request (modelled)")
    print(f"{'step':>6} {'through':>17} {'requests':>9} {'seconds':>8} {'CPU s':>6} {'x':>6}")
    for (step, way), run in best.items():
        baseline = best[step, "Beam file system"]
        print(
            f"{step:>6} {way:>17} {run['requests']:>9} {run['seconds']:>8.2f} "
            f"{run['cpu']:>6.2f} {baseline['seconds'] / run['seconds']:>6.1f}"
        )


if __name__ == "__main__":
    main()

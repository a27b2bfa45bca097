"""What the `ccmine` command's reads of small records cost when each request is a round trip.

    python benchmarks/bench_record_reads.py [--files 400] [--latency-ms 20] [--rounds 2]

Before a job starts, the command reads small files in the run directory: every index shard's
record (the check before mining) and, when a killed extract is rerun, the record of every input
file that run finished. On Cloud Storage each read is a round trip or more. This writes --files
index shards (100-byte stand-ins, with their records) and --files finished extract units into a
GCS emulator in another process that answers every request --latency-ms late, each on a thread
of its own (Cloud Storage serves many at once; the latency is a model, not Cloud Storage's), then
times both checks three ways, keeping each one's fastest of --rounds: the records opened through
Beam's file system one after another, the same THREADS at a time, and as the command reads them
(mining/json_files.py: THREADS at a time, each thread keeping one storage client,
mining/whole_files.py). It prints the requests the emulator answered, the seconds and the
command's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apache_beam.io.filesystems import FileSystems  # noqa: E402

from indexes import shards  # noqa: E402
from mining import json_files  # noqa: E402
from pipelines import extract  # noqa: E402
from tests.gcs_emulator import distant_gcs_bucket  # noqa: E402
from tests.synthetic_run import write_index_shards  # noqa: E402

RECORD = {"encoder": "e", "dim": 8, "embeddings": "run-1", "factory": "Flat"}


def write_units(units_dir: str, count: int) -> list[str]:
    """`count` finished extract units (a few sentences each); the input paths they are for."""
    paths = [f"gs://commoncrawl/segment/wet/file-{n:05d}.warc.wet.gz" for n in range(count)]
    table = pa.table({"text": ["Ein Satz.", "Noch einer."]})
    for number, path in enumerate(paths):
        rows = extract.unit_file(units_dir, number, "parquet")
        with FileSystems.create(rows) as out:
            pq.write_table(table, out)
        size = FileSystems.match([rows])[0].metadata_list[0].size_in_bytes
        record = {"path": path, "rows": 2, "bytes": size, "counts": {"records_used": 1}}
        with FileSystems.create(extract.unit_file(units_dir, number, "json")) as out:
            out.write(json.dumps(record).encode())
    return paths


def through_beam(paths: list[str]) -> list[dict]:
    """Records opened with Beam's FileSystems, as the command read them before json_files kept
    a storage client per thread."""

    def read(path: str) -> dict:
        with FileSystems.open(path) as stream:
            return json.loads(stream.read())

    return json_files.read_concurrently(read, paths)


def timed(check, requests) -> dict:
    before, start, cpu = requests.value, time.perf_counter(), time.process_time()
    result = check()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"requests": requests.value - before, "seconds": seconds, "cpu": cpu, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    monkeypatch = pytest.MonkeyPatch()
    threads = json_files.THREADS
    with distant_gcs_bucket(monkeypatch, args.latency_ms / 1000) as (root, requests):
        index_dir, units_dir = f"{root}/run/indexes", f"{root}/run/.sentences.tmp/_units"
        write_index_shards(index_dir, "de", args.files, RECORD)
        paths = write_units(units_dir, args.files)
        checks = {
            "index check": lambda: shards.check_language(
                index_dir, "de", "run-1", args.files * 10, 8
            ),
            "extract resume": lambda: extract.finished_files(units_dir, paths),
        }
        ways = (
            ("Beam, one by one", 1, through_beam),
            (f"Beam, {threads} at once", threads, through_beam),
            (f"client, {threads} at once", threads, json_files.read_json_files),
        )
        best: dict = {}
        for _ in range(args.rounds):
            for name, check in checks.items():
                for way, count, read in ways:
                    monkeypatch.setattr(json_files, "THREADS", count)
                    monkeypatch.setattr(shards, "read_json_files", read)
                    monkeypatch.setattr(extract, "read_json_files", read)
                    run = timed(check, requests)
                    if (name, way) not in best or run["seconds"] < best[name, way]["seconds"]:
                        best[name, way] = run
    monkeypatch.undo()
    print(f"{args.files} records, {args.latency_ms:g} ms a request (modelled)")
    print(f"{'check':>15} {'reads':>18} {'requests':>9} {'seconds':>8} {'CPU s':>6} {'x':>6}")
    for (name, way), run in best.items():
        baseline = best[name, ways[0][0]]
        assert run["result"] == baseline["result"]
        print(
            f"{name:>15} {way:>18} {run['requests']:>9} {run['seconds']:>8.2f} "
            f"{run['cpu']:>6.2f} {baseline['seconds'] / run['seconds']:>6.1f}"
        )


if __name__ == "__main__":
    main()

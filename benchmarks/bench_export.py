"""Export throughput and memory beside reading the same Parquet with pyarrow alone.

    python benchmarks/bench_export.py [--sizes 250000,1000000] [--formats moses,tsv,jsonl,tmx,hf]
        [--references duckdb|none]

Writes synthetic mined bitext of N pairs (parts of 250,000 rows, realistic sentence lengths,
German words with umlauts and English words, 40 pairs per pair of URLs, sentence hashes that
are random signed 64-bit integers as BLAKE2b's are), then in separate processes, so that each
peak RSS is its own, in --repeats rounds that each run every method once (so that the baseline
and the formats are timed over the same minutes), the fastest run of each method kept:
  pyarrow  read every part in batches with pyarrow alone (the baseline: Arrow only, decoded
           on all cores, nothing converted)
  pyrows   the same, each batch turned into Python rows (what a Python consumer pays)
  FORMAT   `ccmine export` to that format (the Python API, no filters)
  duckdb   the same parts to JSON lines with DuckDB's COPY, on all cores (a reference for
           jsonl: what a fast SQL engine a user might reach for instead does with the same rows)
  floor    for each format, writing as many bytes as its export wrote, in 64 MB blocks from
           memory to a file beside it (the disk's share of the export's time)
Before each run the page cache's dirty pages are flushed (os.sync, not timed), so that no run
pays for writing back an earlier run's output, and each child runs its method once untimed
before TIMED_PER_CHILD timed runs (--cold: one run, no warm-up). The warm-up matters on VMs
whose balloon takes back freed guest memory (free page reporting, as on the project's CI
machine): there the first touch of a page costs a fault on the host, measured at about 450
MB/s, so a cold export pays for every page of its output file and of its first batches. Prints
pairs per second, the ratio to pyarrow's rate in the same run, the bytes written and the
floor's share of the export's time, and peak RSS, also as a ratio to the smallest size (memory
should not grow with the number of pairs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from peak_memory import peak_rss

REPO = Path(__file__).resolve().parents[1]
# Timed runs in each child after its warm-up: the baseline takes a quarter of a second, and on
# this VM one run of it can be a third slower than the next.
TIMED_PER_CHILD = 3
sys.path.insert(0, str(REPO))

WORDS = {
    "de": "der die das und ist nicht ein für über Größe Paket Schlüssel Datei wird mit".split(),
    "en": "the a and is not package system file computer will with on of to for".split(),
}


def sentences(rng, lang: str, n: int) -> list[str]:
    lengths = rng.integers(4, 30, n)
    words = rng.choice(WORDS[lang], size=int(lengths.sum()))
    out, start = [], 0
    for length in lengths.tolist():
        out.append(" ".join(words[start : start + length]).capitalize() + ".")
        start += length
    return out


def write_bitext(directory: Path, n: int) -> None:
    from pipelines.bitext import BITEXT_SCHEMA

    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    for part, start in enumerate(range(0, n, 250_000)):
        rows = min(250_000, n - start)
        scores = np.sort(rng.uniform(1.0, 1.3, rows).astype(np.float32))[::-1] - part
        table = pa.table(
            {
                "src_lang": ["de"] * rows,
                "tgt_lang": ["en"] * rows,
                "src_text": sentences(rng, "de", rows),
                "tgt_text": sentences(rng, "en", rows),
                "score": scores,
                "cosine": rng.uniform(0.6, 1.0, rows).astype(np.float32),
                "src_url": [f"http://de.example/{i // 40}" for i in range(start, start + rows)],
                "tgt_url": [f"http://en.example/{i // 40}" for i in range(start, start + rows)],
                "src_hash": rng.integers(-(2**63), 2**63 - 1, rows, dtype=np.int64),
                "tgt_hash": rng.integers(-(2**63), 2**63 - 1, rows, dtype=np.int64),
            },
            schema=BITEXT_SCHEMA,
        )
        pq.write_table(table, directory / f"part-{part:05d}.parquet")


def child(method: str, bitext: str, out: str, warmup: bool) -> None:
    """Run one method in this process (imports not timed); print the fastest of its timed runs'
    seconds and peak RSS. With `warmup`, the method runs once untimed first, then
    TIMED_PER_CHILD times; without, once. Dirty pages are flushed before each run."""
    timed = []
    for run in range(1 + TIMED_PER_CHILD if warmup else 1):
        os.sync()
        seconds, rows, size = run_method(method, bitext, out)
        if run or not warmup:
            timed.append(seconds)
    print(json.dumps({"rows": rows, "seconds": min(timed), "peak": peak_rss(), "bytes": size}))


def run_method(method: str, bitext: str, out: str) -> tuple[float, int, int]:
    """(seconds, rows, bytes written) of one run; what it wrote is deleted."""
    from mining.bitext_export import export

    suffix = {"moses": "", "tsv": ".tsv", "jsonl": ".jsonl", "tmx": ".tmx", "hf": ".parquet"}
    if method.startswith("floor:"):
        block, left = b"x" * (64 << 20), int(method.split(":")[1])
        start = time.perf_counter()
        with open(out + ".floor", "wb") as stream:
            while left > 0:
                stream.write(block[: min(left, len(block))])
                left -= len(block)
        seconds = time.perf_counter() - start
        Path(out + ".floor").unlink()
        return seconds, 0, 0
    if method == "duckdb":
        return _duckdb_jsonl(bitext, out + ".duckdb.jsonl")
    start = time.perf_counter()
    written = []
    if method in ("pyarrow", "pyrows"):
        rows = 0
        for path in sorted(Path(bitext).glob("part-*.parquet")):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                rows += len(batch.to_pylist()) if method == "pyrows" else batch.num_rows
    else:
        counts = export(bitext, method, out + suffix[method])
        rows, written = counts["kept"], counts["written"]
    seconds = time.perf_counter() - start
    size = sum(Path(p).stat().st_size for p in written)
    for path in written:
        Path(path).unlink()
    return seconds, rows, size


def _duckdb_jsonl(bitext: str, path: str) -> tuple[float, int, int]:
    import duckdb

    connection = duckdb.connect()
    parts = str(Path(bitext) / "part-*.parquet")
    start = time.perf_counter()
    query = f"COPY (SELECT * FROM read_parquet('{parts}')) TO '{path}' (FORMAT JSON)"
    rows = connection.execute(query).fetchone()[0]
    seconds = time.perf_counter() - start
    size = Path(path).stat().st_size
    Path(path).unlink()
    return seconds, rows, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="250000,1000000")
    parser.add_argument("--formats", default="moses,tsv,jsonl,tmx,hf")
    parser.add_argument(
        "--references", default="duckdb", help="Other tools timed beside (duckdb, or none)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cold",
        action="store_true",
        help="Time each child's first run (default: a warm-up run first, untimed)",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        *args, warmup = options.child
        child(*args, warmup == "warm")
        return
    references = [] if options.references == "none" else options.references.split(",")
    methods = ["pyarrow", "pyrows", *options.formats.split(","), *references]
    with tempfile.TemporaryDirectory(prefix="bench_export-") as work:
        results = measure(options, methods, Path(work))
    report(results)


def measure(options, methods, work: Path) -> dict:
    """Each method's fastest run, from --repeats rounds that run every method once, so that the
    baseline and each format are timed over the same minutes: this VM's pace drifts (pyarrow's
    read went from 4.3M to 3.7M pairs/s between two runs of the whole benchmark)."""
    results: dict = {}
    for n in (int(s) for s in options.sizes.split(",")):
        bitext = work / f"n{n}" / "de-en"
        write_bitext(bitext, n)
        runs: dict = {method: [] for method in methods}
        floors: dict = {method: [] for method in methods}
        for _ in range(options.repeats):
            for method in methods:
                run = run_child(method, bitext, work / f"out{n}", options.cold)
                runs[method].append(run)
                if run["bytes"]:
                    floor = run_child(
                        f"floor:{run['bytes']}", bitext, work / f"out{n}", options.cold
                    )
                    floors[method].append(floor["seconds"])
        for method in methods:
            results[(n, method)] = {
                "rows": runs[method][0]["rows"],
                "seconds": min(r["seconds"] for r in runs[method]),
                "peak": max(r["peak"] for r in runs[method]),
                "bytes": runs[method][0]["bytes"],
            }
            if floors[method]:
                results[(n, method)]["floor"] = min(floors[method])
    return results


def run_child(method: str, bitext: Path, out: Path, cold: bool) -> dict:
    """What `child` prints for a method, run in a new process."""
    command = [sys.executable, __file__, "--child", method, str(bitext), str(out)]
    done = subprocess.run(
        [*command, "cold" if cold else "warm"], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict) -> None:
    smallest = min(n for n, _ in results)
    header = (
        "N",
        "method",
        "seconds",
        "pairs/s",
        "x pyarrow",
        "MB out",
        "floor",
        "peak MB",
        "mem x",
    )
    print("{:>10} {:8} {:>8} {:>10} {:>9} {:>7} {:>6} {:>8} {:>6}".format(*header))
    for (n, method), r in results.items():
        rate = r["rows"] / r["seconds"]
        base = results[(n, "pyarrow")]
        ratio = rate / (base["rows"] / base["seconds"])
        memory = r["peak"] / results[(smallest, method)]["peak"]
        out_mb = f"{r['bytes'] / 2**20:.0f}" if r["bytes"] else ""
        floor = f"{r['floor'] / r['seconds']:.2f}" if "floor" in r else ""
        print(
            f"{n:>10,} {method:8} {r['seconds']:>8.2f} {rate:>10,.0f} {ratio:>9.2f} "
            f"{out_mb:>7} {floor:>6} {r['peak'] / 2**20:>8.0f} {memory:>6.2f}"
        )


if __name__ == "__main__":
    main()

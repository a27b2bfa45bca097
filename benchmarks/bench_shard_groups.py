"""Work files the mine stage writes with blocks keyed by groups of shards, against single shards.

    python benchmarks/bench_shard_groups.py [--rows 40000] [--shard-rows 500] [--groups 8]
        [--mode max] [--latency-ms 0] [--repeats 2]

The margins', the selection's and the assembly's steps send blocks on to the other side's
shards; rows fall in every shard, so keyed by single shards they write one block per shard and
shard their rows touch. pipelines/pair_context.py keys them by groups of consecutive shards.
This writes --rows synthetic 16-d sentences per side (half of de noisy copies of en rows) in
embedding shards of --shard-rows, builds exact indexes (not timed), then mines de-en on Beam's
local runner, alternately with single shards (the baseline, as before groups) and with --groups
groups a language (made small enough to give groups at this size; a real run has up to 256 of up
to 16 shards), --repeats times each, keeping the fastest. It prints the work files written per step,
all of them, the seconds and their ratio to the baseline; both arms must write the same bitext.
With --latency-ms the run directory is on a GCS emulator in another process that answers each
request that late (a model of Cloud Storage's round trips, not a measurement of them).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apache_beam.io.filesystems import FileSystems  # noqa: E402

from pipelines import bitext, index, knn, mine, pair_context, select  # noqa: E402
from pipelines.work_files import put  # noqa: E402
from tests.gcs_emulator import distant_gcs_bucket  # noqa: E402
from tests.synthetic_run import planted, write_embeddings  # noqa: E402


def mined(run_dir: str, mode: str, monkeypatch) -> dict:
    """One mine of de-en: seconds, work files written by step, a digest of the bitext."""
    written = collections.Counter()

    def counted(work, name, block):
        written[name.split("/")[0].split("-")[0].rstrip("0123456789")] += 1
        return put(work, name, block)

    for module in (knn, select, bitext):
        monkeypatch.setattr(module, "put", counted)
    start = time.perf_counter()
    stats = mine.run(run_dir, "de", "en", 4, "ratio", mode, threshold=1.0)
    seconds = time.perf_counter() - start
    table = mine.read_bitext(FileSystems.join(run_dir, "bitext", "de-en"))
    rows = table.select(["src_text", "tgt_text", "score"]).to_pylist()
    digest = hashlib.sha1(repr(rows).encode()).hexdigest()[:12]
    return {"seconds": seconds, "files": written, "pairs": stats["kept"], "digest": digest}


def measure(root: str, args, monkeypatch) -> dict:
    run_dir = FileSystems.join(root, "run")
    de, en = planted(np.random.default_rng(0), args.rows, args.rows, args.rows // 2, 16)
    write_embeddings(run_dir, {"de": de, "en": en}, {"de": args.shard_rows, "en": args.shard_rows})
    index.run(run_dir, ["de", "en"], {"index_type": "flat", "shard_size": args.rows // 4})
    arms = {"single shards": {"GROUP_SHARDS": 1}, f"{args.groups} groups": {"GROUPS": args.groups}}
    best: dict = {}
    for _ in range(args.repeats):
        for arm, settings in arms.items():
            with monkeypatch.context() as patched:
                for name, value in settings.items():
                    patched.setattr(pair_context, name, value)
                run = mined(run_dir, args.mode, patched)
            if arm not in best or run["seconds"] < best[arm]["seconds"]:
                best[arm] = run
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--shard-rows", type=int, default=500)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--mode", default="max")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    monkeypatch = pytest.MonkeyPatch()
    if args.latency_ms:
        with distant_gcs_bucket(monkeypatch, args.latency_ms / 1000) as (root, _requests):
            best = measure(root, args, monkeypatch)
    else:
        with tempfile.TemporaryDirectory() as root:
            best = measure(root, args, monkeypatch)
    monkeypatch.undo()
    baseline, grouped = best.values()
    assert baseline["digest"] == grouped["digest"], "the arms wrote different bitext"
    shards = -(-args.rows // args.shard_rows)
    where = f"GCS emulator, {args.latency_ms:g} ms a request" if args.latency_ms else "local disk"
    print(f"{args.rows:,} rows a side in {shards} shards, {args.mode} mode, {where}")
    print(f"{baseline['pairs']:,} pairs, the same in both arms")
    steps = sorted(set(baseline["files"]) | set(grouped["files"]))
    print(f"{'work files':>16} " + " ".join(f"{arm:>14}" for arm in best))
    for step in steps:
        print(f"{step:>16} " + " ".join(f"{run['files'][step]:>14,}" for run in best.values()))
    print(f"{'all':>16} " + " ".join(f"{sum(run['files'].values()):>14,}" for run in best.values()))
    print(f"{'seconds':>16} " + " ".join(f"{run['seconds']:>14.1f}" for run in best.values()))
    ratio = grouped["seconds"] / baseline["seconds"]
    print(f"{'x single shards':>16} {1.0:>14.2f} {ratio:>14.2f}")


if __name__ == "__main__":
    main()

"""Several pairs mined in shared Beam jobs, against one pair per job, on Beam's portable runner.

    python benchmarks/bench_pairs.py [--pairs 4] [--rows 20000] [--dim 64] [--repeats 2]
        [--runner portable|local]

Synthetic embeddings of en and --pairs source languages (--rows each; half of each source
language's rows are noisy copies of en rows) get exact indexes (`ccmine index`, not timed).
Then `ccmine mine --src L1,...,LP` runs as a user runs it, alternately with --pairs-per-job 1
(the baseline: a set of jobs per pair, as ccmine mined before pairs shared jobs) and
--pairs-per-job P (one set of jobs for every pair), --repeats times each, the fastest run of each
kept. With `portable` (default) a local job service and an external worker pool are started once
for all runs, so each job starts its SDK workers apart from the runner, as Flink, Spark and
Dataflow do; `local` runs on Beam's FnApiRunner in the ccmine process. Prints seconds, Beam jobs
(2 per set of jobs: no pair needs more rounds than one job unrolls, checked) and the time as a
ratio to the baseline; both arms must write the same bitext.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_scale import serve  # noqa: E402

from mining.embedding_store import write_shard  # noqa: E402
from pipelines.mine import ROUNDS_PER_PIPELINE, read_bitext  # noqa: E402
from pipelines.stage_dir import StageWriter, read_json  # noqa: E402

SOURCES = ["de", "fr", "es", "it", "nl", "pt", "pl", "sv", "cs", "da", "fi", "hu", "ro", "el"]


def write_synthetic(run_dir: Path, srcs: list[str], rows: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    en = rng.standard_normal((rows, dim), dtype=np.float32)
    vectors = {"en": en}
    for lang in srcs:
        own = rng.standard_normal((rows, dim), dtype=np.float32)
        copies = np.arange(rows) < rows // 2
        own[copies] = en[copies] + 0.3 * own[copies]
        vectors[lang] = own
    writer = StageWriter(str(run_dir), "embeddings")
    for lang, array in vectors.items():
        array /= np.linalg.norm(array, axis=1, keepdims=True)
        ids = pa.table(
            {
                "hash": pa.array(np.arange(rows), pa.int64()),
                "text": pa.array([f"{lang} {i}" for i in range(rows)]),
                "url": pa.array([f"http://{lang}.example/{i // 50}" for i in range(rows)]),
                "record_id": pa.array(["<urn:x>"] * rows),
                "position": pa.array(np.zeros(rows, np.int32)),
            }
        )
        write_shard(writer.path(f"lang={lang}"), 0, array.astype(np.float16), ids)
    writer.commit({}, {"encoder": "synthetic"})


def ccmine(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"ccmine {args[0]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def bitext_digest(run_dir: Path, srcs: list[str]) -> tuple[str, int]:
    """(a digest of every pair's rows, pairs kept); checks no pair needed a second job of rounds."""
    digest, kept = hashlib.sha256(), 0
    for src in srcs:
        table = read_bitext(str(run_dir / "bitext" / f"{src}-en"))
        digest.update(str(table.to_pylist()).encode())
        stats = read_json(str(run_dir / "bitext" / f"{src}-en" / "stats.json"))
        assert stats.get("rounds", 0) <= ROUNDS_PER_PIPELINE, stats.get("rounds")
        kept += stats["kept"]
    return digest.hexdigest(), kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runner", choices=["portable", "local"], default="portable")
    options = parser.parse_args()
    srcs = SOURCES[: options.pairs]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
    }
    with tempfile.TemporaryDirectory(prefix="bench_pairs-") as work:
        run_dir = Path(work) / "run"
        write_synthetic(run_dir, srcs, options.rows, options.dim)
        ccmine(["index", "--run", str(run_dir), "--langs", ",".join([*srcs, "en"])], env)
        services = []
        beam_args: list[str] = []
        if options.runner == "portable":
            job_service, job_port = serve(
                "apache_beam.runners.portability.local_job_service_main", "--port", env
            )
            pool, pool_port = serve(
                "apache_beam.runners.worker.worker_pool_main", "--service_port", env
            )
            services = [job_service, pool]
            beam_args = [
                "--runner=PortableRunner",
                f"--job_endpoint=localhost:{job_port}",
                "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{pool_port}",
                "--job_server_timeout=86400",
            ]
        arms = {"one pair per job": 1, "shared": len(srcs)}
        seconds: dict = {arm: [] for arm in arms}
        digests: dict = {}
        try:
            for _ in range(options.repeats):
                for arm, per_job in arms.items():
                    mine = ["mine", "--run", str(run_dir), "--src", ",".join(srcs)]
                    mine += ["--threshold", "1.0", "--pairs-per-job", str(per_job), *beam_args]
                    seconds[arm].append(ccmine(mine, env))
                    digests.setdefault(arm, set()).add(bitext_digest(run_dir, srcs))
        finally:
            for process in services:
                process.kill()
    (found,) = set.union(*digests.values())  # every run of both arms: the same bitext
    base = min(seconds["one pair per job"])
    print(
        f"{len(srcs)} pairs, {options.rows:,} sentences per language, {options.dim}-d, "
        f"{options.runner} runner; {found[1]:,} pairs kept in all"
    )
    print(f"{'arm':<18} {'jobs':>5} {'seconds':>8} {'runs':>20} {'x base':>7}")
    for arm, per_job in arms.items():
        jobs = 2 * -(-len(srcs) // per_job)
        runs = ", ".join(f"{s:.1f}" for s in seconds[arm])
        best = min(seconds[arm])
        print(f"{arm:<18} {jobs:>5} {best:>8.1f} {runs:>20} {best / base:>7.2f}")


if __name__ == "__main__":
    main()

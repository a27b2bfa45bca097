"""Memory and time of the sharded index and mine stages as the corpus grows.

    python benchmarks/bench_scale.py [--sizes 1000000,2000000,4000000,8000000] [--dim 64]
        [--embedding-shard 100000] [--index-shard 1000000] [--json FILE]

For each N (sentences per side; half of one side are noisy copies of the other), synthetic unit
vectors are written as embedding shards of fixed size, then `ccmine index` and `ccmine mine` run
as the user would run them, on Beam's portable runner: a local job service and an external
worker pool, started afresh for each N, so that the launching process (the ccmine command),
the workers and the runner are separate processes, as on Dataflow. Peak RSS (VmHWM, polled from
/proc) is taken for the launching process, the largest worker process and the job service. The
job service is the local runner: it holds the data between stages, which on Dataflow the
shuffle service holds, so its memory grows with N by design; the goal is about the launcher and
the workers. Index parameters are set for speed (few lists probed, 8 candidates re-scored):
this measures growth, not recall. Ratios are against the first size, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peak_memory import peak_rss  # noqa: E402

from mining.embedding_store import write_shard  # noqa: E402
from pipelines.stage_dir import StageWriter  # noqa: E402


def write_synthetic(run_dir: Path, n: int, dim: int, shard_rows: int, seed: int = 0) -> None:
    """de and en of n rows each; de's first n/2 rows are noisy copies of en's."""
    rng = np.random.default_rng(seed)
    writer = StageWriter(str(run_dir), "embeddings")
    for shard, start in enumerate(range(0, n, shard_rows)):
        stop = min(start + shard_rows, n)
        en = rng.standard_normal((stop - start, dim), dtype=np.float32)
        de = rng.standard_normal((stop - start, dim), dtype=np.float32)
        copies = np.arange(start, stop) < n // 2
        de[copies] = en[copies] + 0.3 * de[copies]
        for lang, vectors in (("de", de), ("en", en)):
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = np.arange(start, stop)
            ids = pa.table(
                {
                    "hash": pa.array(rows, pa.int64()),
                    "text": pa.array([f"{lang} {i}" for i in rows.tolist()]),
                    "url": pa.array([f"http://{lang}.example/{i // 50}" for i in rows.tolist()]),
                    "record_id": pa.array(["<urn:x>"] * len(rows)),
                    "position": pa.array(np.zeros(len(rows), np.int32)),
                }
            )
            write_shard(writer.path(f"lang={lang}"), shard, vectors.astype(np.float16), ids)
    writer.commit({}, {"encoder": "synthetic"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def serve(module: str, flag: str, env: dict):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, f"{flag}={port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        with socket.socket() as sock:
            if sock.connect_ex(("localhost", port)) == 0:
                return process, port
        time.sleep(0.2)
    raise RuntimeError(f"{module} did not start")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


class PeakWatcher:
    """Polls the peak RSS of the launcher, the worker pool's children and the job service."""

    def __init__(self, launcher: int, pool: int, job_service: int):
        self.pids = {"launcher": launcher, "pool": pool, "job_service": job_service}
        self.peaks = {"launcher": 0, "worker": 0, "job_service": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def poll(self):
        self.peaks["launcher"] = max(self.peaks["launcher"], peak_rss(self.pids["launcher"]))
        self.peaks["job_service"] = max(
            self.peaks["job_service"], peak_rss(self.pids["job_service"])
        )
        for worker in children(self.pids["pool"]):
            self.peaks["worker"] = max(self.peaks["worker"], peak_rss(worker))

    def run(self):
        while not self.stop.is_set():
            self.poll()
            time.sleep(0.5)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def run_stage(args: list[str], env: dict, pool, job_service, peaks: dict) -> float:
    """Run one ccmine command; returns seconds and raises the peaks seen."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with PeakWatcher(process.pid, pool.pid, job_service.pid) as watcher:
        output, _ = process.communicate()
        watcher.poll()
    if process.returncode:
        raise RuntimeError(f"ccmine {args[0]} failed:\n{output[-3000:]}")
    for role, value in watcher.peaks.items():
        peaks[role] = max(peaks.get(role, 0), value)
    return time.perf_counter() - start


def measure(n: int, options, work: Path) -> dict:
    run_dir = work / f"n{n}"
    start = time.perf_counter()
    write_synthetic(run_dir, n, options.dim, options.embedding_shard)
    generated = time.perf_counter() - start
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
    }
    job_service, job_port = serve(
        "apache_beam.runners.portability.local_job_service_main", "--port", env
    )
    pool, pool_port = serve("apache_beam.runners.worker.worker_pool_main", "--service_port", env)
    beam_args = [
        "--runner=PortableRunner",
        f"--job_endpoint=localhost:{job_port}",
        "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{pool_port}",
        "--job_server_timeout=86400",  # the job's state stream ends at this deadline
    ]
    peaks: dict = {}
    try:
        index_seconds = run_stage(
            [
                "index",
                "--run",
                str(run_dir),
                "--langs",
                "de,en",
                "--index-type",
                "ivfpq",
                "--nlist",
                str(options.nlist),
                "--nprobe",
                str(options.nprobe),
                "--index-shard-size",
                str(options.index_shard),
                *beam_args,
            ],
            env,
            pool,
            job_service,
            peaks,
        )
        mine_seconds = run_stage(
            [
                "mine",
                "--run",
                str(run_dir),
                "--src",
                "de",
                "--threshold",
                "1.0",
                "--candidates",
                "8",
                *beam_args,
            ],
            env,
            pool,
            job_service,
            peaks,
        )
    finally:
        pool.kill()
        job_service.kill()
    stats = json.loads((run_dir / "bitext" / "de-en" / "stats.json").read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "n": n,
        "generate_s": round(generated, 1),
        "index_s": round(index_seconds, 1),
        "mine_s": round(mine_seconds, 1),
        "pairs": stats["kept"],
        "rounds": stats.get("rounds"),
        "search_items": stats["search_items"],
        "index_shards": stats["index_shards"]["en"],
        **{f"peak_{role}_mb": round(value / 2**20) for role, value in peaks.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,2000000,4000000,8000000")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--embedding-shard", type=int, default=100_000)
    parser.add_argument("--index-shard", type=int, default=1_000_000)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=4)
    parser.add_argument("--work", help="where the synthetic runs go (default: a temp dir)")
    parser.add_argument("--json", help="also write the rows here")
    options = parser.parse_args()
    work = Path(options.work or tempfile.mkdtemp(prefix="bench_scale-"))
    rows = []
    header = (
        f"{'N':>10} {'index s':>8} {'mine s':>8} {'pairs':>9} {'items':>6} "
        f"{'launcher MB':>12} {'worker MB':>10} {'job svc MB':>11} "
        f"{'launcher x':>10} {'worker x':>9} {'time x':>7}"
    )
    print(header, flush=True)
    for n in (int(s) for s in options.sizes.split(",")):
        row = measure(n, options, work)
        rows.append(row)
        base = rows[0]
        print(
            f"{n:>10,} {row['index_s']:>8} {row['mine_s']:>8} {row['pairs']:>9,} "
            f"{row['search_items']:>6} {row['peak_launcher_mb']:>12} {row['peak_worker_mb']:>10} "
            f"{row['peak_job_service_mb']:>11} "
            f"{row['peak_launcher_mb'] / base['peak_launcher_mb']:>10.2f} "
            f"{row['peak_worker_mb'] / base['peak_worker_mb']:>9.2f} "
            f"{(row['index_s'] + row['mine_s']) / (base['index_s'] + base['mine_s']):>7.2f}",
            flush=True,
        )
        if options.json:
            Path(options.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

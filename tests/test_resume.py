"""Killed stages resume: a rerun of embed encodes only the rows of unfinished shards, a rerun of
extract reads only the unfinished files, and the results equal uninterrupted runs'."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from warcio.archiveiterator import ArchiveIterator

from mining.embedding_store import list_shards, read_parquet, read_vectors
from mining.extraction import ExtractConfig
from pipelines import embed, extract
from pipelines.cli import cli
from pipelines.run_lock import run_lock
from tests.conftest import REPO

pytestmark = pytest.mark.slow
SAMPLE = REPO / "data" / "sample" / "sample-crawl.warc.gz"
ROWS_PER_SHARD = 250  # about 20 shards of German


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("extracted")
    extract.run([str(SAMPLE)], str(run_dir), ExtractConfig(langs=("de",)))
    return run_dir


def copy_of(extracted, place):
    shutil.copytree(extracted / "sentences", place / "sentences")
    return place


def shards_of(run_dir):
    found = {}
    for npy, parquet in list_shards(str(run_dir / "embeddings"), "de"):
        found[os.path.basename(npy)] = (read_vectors(npy), read_parquet(parquet))
    return found


def test_a_killed_embed_encodes_only_the_missing_rows_when_rerun(extracted, tmp_path):
    full = copy_of(extracted, tmp_path / "full")
    start = time.perf_counter()
    uninterrupted = embed.run(str(full), "bundled", ["de"], rows_per_shard=ROWS_PER_SHARD)
    full_seconds = time.perf_counter() - start
    total = sum(uninterrupted["embedded"].values())

    killed = copy_of(extracted, tmp_path / "killed")
    command = [sys.executable, "-m", "pipelines.cli", "embed", "--run", str(killed)]
    command += ["--encoder", "bundled", "--langs", "de", "--rows-per-shard", str(ROWS_PER_SHARD)]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(process, killed, ".embeddings.tmp-*/_units/*.json", 4)
    assert not (killed / "embeddings").exists()  # nothing visible before the commit
    records = sorted(killed.glob(".embeddings.tmp-*/_units/*.json"))
    damaged = records[0]  # as a run killed while writing it left it before writes were atomic
    damaged.write_text(damaged.read_text()[:10])

    start = time.perf_counter()
    resumed = embed.run(str(killed), "bundled", ["de"], rows_per_shard=ROWS_PER_SHARD)
    resumed_seconds = time.perf_counter() - start
    reused = resumed["resumed"]
    assert reused["shards_reused"] == len(records) - 1  # the damaged record's shard done again
    assert sum(resumed["encoded_now"].values()) == total - reused["rows_reused"]
    assert resumed["embedded"] == uninterrupted["embedded"]
    print(f"embed: full {full_seconds:.1f} s, rerun {resumed_seconds:.1f} s, {reused}")

    expected, got = shards_of(full), shards_of(killed)
    assert got.keys() == expected.keys()
    for key, (vectors, ids) in expected.items():
        assert ids.equals(got[key][1]), key
        np.testing.assert_allclose(got[key][0], vectors, atol=2e-3)
    layout = "embeddings/lang=de/_layout.json"  # the killed run's shards recorded with the rest
    assert (killed / layout).read_text() == (full / layout).read_text()
    assert not list(killed.glob(".embeddings.tmp-*"))  # committed and cleaned up
    assert not (killed / "embeddings" / "_units").exists()


def sentences_of(run_dir):
    rows = []
    for part in sorted((run_dir / "sentences").glob("lang=*/*.parquet")):
        rows += pq.read_table(part).to_pylist()
    return sorted(rows, key=lambda r: (r["lang"], r["hash"]))


def wait_until(process, pattern_root, pattern, count):
    deadline = time.monotonic() + 300
    while len(list(pattern_root.glob(pattern))) < count:
        assert process.poll() is None and time.monotonic() < deadline, "the stage ended too soon"
        time.sleep(0.02)


def kill_when(process, pattern_root, pattern, count, how=signal.SIGKILL):
    wait_until(process, pattern_root, pattern, count)
    process.send_signal(how)
    process.wait()


def sample_thirds(directory) -> list:
    """The sample cut into three files of about a third of its records each (cut between
    records, each of which is its own gzip member)."""
    data = SAMPLE.read_bytes()
    with open(SAMPLE, "rb") as stream:
        records = ArchiveIterator(stream)
        offsets = [records.get_record_offset() for _ in records]
    cuts = [offsets[len(offsets) * i // 3] for i in range(3)] + [len(data)]
    thirds = []
    for i in range(3):
        thirds.append(directory / f"third-{i}.warc.gz")
        thirds[-1].write_bytes(data[cuts[i] : cuts[i + 1]])
    return thirds


def test_a_killed_extract_reads_only_the_unfinished_files_when_rerun(tmp_path):
    """Killed with Ctrl-C (SIGINT), as a user stops a run."""
    # Six files, each third of the sample twice: their sentences repeat, de-duplication keeps
    # one of each.
    paths = []
    for copy, third in enumerate(sample_thirds(tmp_path) * 2):
        paths.append(str(tmp_path / f"crawl-{copy}.warc.gz"))
        shutil.copy(third, paths[-1])
    config = ExtractConfig(langs=("de", "en"))
    start = time.perf_counter()
    uninterrupted = extract.run(paths, str(tmp_path / "full"), config)
    full_seconds = time.perf_counter() - start

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "pipelines.cli", "extract", "--output", str(killed)]
    command += ["--langs", "de,en", *[a for p in paths for a in ("--input", p)]]
    with open(tmp_path / "stderr", "w+") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
        wait_until(process, killed, ".sentences.tmp-*/_units/*.json", 2)
        # A second command on the same run directory meanwhile is refused, naming the first.
        second = CliRunner().invoke(cli, command[3:])
        kill_when(process, killed, ".sentences.tmp-*/_units/*.json", 2, signal.SIGINT)  # Ctrl-C
        stderr.seek(0)
        lines = stderr.read().splitlines()
    assert second.exit_code == 2, second.output
    assert second.stderr.startswith(
        f"ccmine: error: {killed} is in use by ccmine extract --output {killed} --langs de,en "
        f"--input {paths[0]} --input "
    )
    assert f"(pid {process.pid}, since " in second.stderr
    # One line, exit status 130 (before: Beam's traceback of the KeyboardInterrupt, status 1).
    assert process.returncode == 130, lines[-5:]
    assert lines[-1].startswith("ccmine: interrupted; rerun the same command to go on (")
    assert not any("Traceback" in line for line in lines)
    assert not (killed / "sentences").exists()

    with run_lock(str(killed)):  # the interrupted command's lock ended with it
        pass
    start = time.perf_counter()
    resumed = extract.run(paths, str(killed), config)
    resumed_seconds = time.perf_counter() - start
    files_reused = resumed.pop("resumed")["files_reused"]
    assert 2 <= files_reused < 6
    assert resumed["files_read"] == 6  # the finished files' counts, as if read again
    for key in ("seconds",):
        resumed.pop(key, None), uninterrupted.pop(key, None)
    assert resumed == uninterrupted
    assert sentences_of(killed) == sentences_of(tmp_path / "full")
    print(
        f"extract: full {full_seconds:.1f} s, rerun {resumed_seconds:.1f} s, {files_reused} reused"
    )


def test_a_unit_is_reused_only_when_recorded_for_its_file_at_its_listed_size(tmp_path, caplog):
    units, paths = str(tmp_path), [f"crawl-{n}.warc.gz" for n in range(6)]
    for number, path in enumerate(paths):
        rows = extract.unit_file(units, number, "parquet")
        pq.write_table(pa.table({"text": ["Eins.", "Zwei."]}), rows)
        record = {"path": path, "rows": 2, "bytes": os.path.getsize(rows), "counts": {}}
        if number == 1:
            record["path"] = paths[0]  # a record of another input file
        if number == 2:
            del record["bytes"]  # a record written before units recorded their size
        if number != 3:  # killed before its record was written
            text = json.dumps(record)
            if number == 5:  # killed while writing it (before writes were atomic)
                text = text[:20]
            Path(extract.unit_file(units, number, "json")).write_text(text)
    with open(extract.unit_file(units, 4, "parquet"), "r+b") as cut:
        cut.truncate(os.path.getsize(cut.name) - 1)
    with caplog.at_level("WARNING", logger="ccmine"):
        assert list(extract.finished_files(units, paths)) == ["crawl-0.warc.gz"]
    damaged = extract.unit_file(units, 5, "json")
    assert f"{damaged}: not a JSON record" in caplog.text and "done again" in caplog.text
    assert extract.finished_files(str(tmp_path / "none"), paths) == {}


def test_a_resumable_place_is_continued_only_for_the_same_configuration(tmp_path):
    from pipelines.stage_dir import StageWriter

    first = StageWriter(str(tmp_path), "embeddings", resume={"encoder": "a", "shards": 3})
    (tmp_path / first.work / "_units").mkdir()
    (tmp_path / first.work / "_units" / "de-00001.json").write_text("{}")
    cut_short = tmp_path / first.work / "lang=de" / "shard-00002.npy.partial-4242-77"
    cut_short.parent.mkdir()
    cut_short.write_bytes(b"\x93NUMPY")  # a file a killed writer had not renamed into place
    first.abandon()  # a failure keeps a resumable place
    again = StageWriter(str(tmp_path), "embeddings", resume={"encoder": "a", "shards": 3})
    assert again.resumed and again.work == first.work
    assert not cut_short.exists() and (tmp_path / again.work / "_units" / "de-00001.json").exists()
    other = StageWriter(str(tmp_path), "embeddings", resume={"encoder": "b", "shards": 3})
    assert not other.resumed and not os.path.exists(first.work)  # the stale place is gone
    other.commit({}, {})
    assert not (tmp_path / "embeddings" / "_resume.json").exists()
    plain = StageWriter(str(tmp_path), "indexes")
    plain.abandon()
    assert not os.path.exists(plain.work)  # stages that cannot resume clean up


def test_a_damaged_resume_record_starts_the_stage_afresh(tmp_path, caplog):
    """A place whose resume record was cut short (a run killed while writing it, before writes
    were atomic) is not continued and does not stop the rerun: it is removed, with a warning
    that names the record."""
    from pipelines.stage_dir import StageWriter

    first = StageWriter(str(tmp_path), "embeddings", resume={"encoder": "a", "shards": 3})
    record = Path(first.work) / "_resume.json"
    record.write_text(record.read_text()[:5])
    first.abandon()
    with caplog.at_level("WARNING", logger="ccmine"):
        again = StageWriter(str(tmp_path), "embeddings", resume={"encoder": "a", "shards": 3})
    assert not again.resumed and again.work != first.work and not os.path.exists(first.work)
    assert f"embeddings: not resuming: {record}: not a JSON record" in caplog.text
    assert json.loads(Path(again.work, "_resume.json").read_text()) == {"encoder": "a", "shards": 3}

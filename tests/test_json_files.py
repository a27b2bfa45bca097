import threading
import time

import pytest

from mining.json_files import (
    THREADS,
    DamagedJson,
    read_concurrently,
    read_json,
    read_json_files,
    write_json,
)
from tests.gcs_emulator import gcs_bucket, served


def test_reads_overlap_and_come_back_in_path_order():
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def read(path):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.01)  # a round trip
        with lock:
            in_flight[0] -= 1
        return path.upper()

    paths = [f"shard-{n:05d}.json" for n in range(40)]
    assert read_concurrently(read, paths, threads=8) == [path.upper() for path in paths]
    assert most[0] == 8
    assert read_concurrently(read, paths[:1]) == ["SHARD-00000.JSON"]


def test_the_first_failing_path_is_raised_and_later_reads_are_cancelled():
    started = []

    def read(path):
        started.append(path)
        if path in ("b", "c"):
            raise FileNotFoundError(path)
        time.sleep(0.01)
        return path

    with pytest.raises(FileNotFoundError, match="b"):
        read_concurrently(read, ["a", "b", "c", *map(str, range(100))], threads=2)
    assert len(started) < 50


def test_records_on_cloud_storage_take_one_request_each(monkeypatch):
    with gcs_bucket(monkeypatch) as root:
        paths = [f"{root}/run/_units/file-{n:05d}.json" for n in range(40)]
        for number, path in enumerate(paths):
            write_json(path, {"number": number, "text": "Grüße, 你好"})
        with served() as counts:
            records = read_json_files(paths)
        assert records == [{"number": n, "text": "Grüße, 你好"} for n in range(40)]
        # and each thread's client asks once for the bucket; Beam's file system takes 3 a record
        assert counts["requests"] <= 40 + THREADS
        with pytest.raises(FileNotFoundError, match="file-00040.json: not found"):
            read_json_files([*paths, f"{root}/run/_units/file-00040.json"])


def test_a_damaged_record_stops_a_command_with_one_line_naming_it(tmp_path, capsys):
    """Such as a run's stats.json cut short (before: a traceback)."""
    from pipelines.cli import _run_guarded

    stats = tmp_path / "stats.json"
    stats.write_text('{"sentences_kept": {"de"')
    with pytest.raises(DamagedJson, match=f"{stats}: not a JSON record"):
        read_json(str(stats))
    with pytest.raises(SystemExit) as exit_status:
        _run_guarded(lambda: read_json(str(stats)))
    assert exit_status.value.code == 2
    assert capsys.readouterr().err.startswith(
        f"ccmine: damaged file: {stats}: not a JSON record (Expecting"
    )

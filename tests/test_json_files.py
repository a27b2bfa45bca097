import threading
import time

import pytest

from mining.json_files import read_concurrently


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

"""The embedding shard format: vectors and row-aligned ids, readable with numpy and pyarrow."""

import numpy as np
import pyarrow as pa
import pytest

from mining.embedding_store import (
    ID_SCHEMA,
    list_shards,
    load_ids,
    load_vectors,
    shard_layout,
    shard_shape,
    write_shard,
)


def ids(start, n):
    rows = [
        {"hash": i, "text": f"s{i}", "url": "u", "record_id": "r", "position": 0}
        for i in range(start, start + n)
    ]
    return pa.Table.from_pylist(rows, ID_SCHEMA)


def test_shards_round_trip_and_headers_give_sizes(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float16)
    write_shard(str(tmp_path / "lang=de"), 0, vectors[:7], ids(0, 7))
    write_shard(str(tmp_path / "lang=de"), 1, vectors[7:], ids(7, 5))
    (npy0, parquet0), (npy1, _) = list_shards(str(tmp_path), "de")
    assert shard_shape(npy0) == (7, 5) and shard_shape(npy1) == (5, 5)
    layout = shard_layout(str(tmp_path), "de")
    assert layout.starts == (0, 7, 12) and layout.dim == 5 and layout.parquets[0] == parquet0
    assert layout.shard_of(np.array([0, 6, 7, 11])).tolist() == [0, 0, 1, 1]
    # row ranges are read across shard boundaries, only their bytes
    assert np.array_equal(layout.read_rows(5, 9), vectors[5:9])
    assert np.array_equal(layout.read_rows(7, 12), vectors[7:])
    assert np.array_equal(load_vectors(str(tmp_path), "de", np.float16), vectors)
    assert load_ids(str(tmp_path), "de", ["hash"]).column("hash").to_pylist() == list(range(12))
    with pytest.raises(ValueError, match="3 vectors but 2 id rows"):
        write_shard(str(tmp_path / "lang=en"), 0, vectors[:3], ids(0, 2))


def test_processes_that_read_parquet_exit_cleanly(tmp_path):
    """pq.read_table on a Python file object made a third to a half of such exits abort
    (arrow#33975); run one after another, as processes racing each other hid it."""
    import subprocess
    import sys

    write_shard(str(tmp_path / "lang=de"), 0, np.zeros((2000, 4), np.float16), ids(0, 2000))
    ((_, parquet),) = list_shards(str(tmp_path), "de")
    code = f"from mining.embedding_store import read_parquet; read_parquet({parquet!r})"
    codes = [subprocess.run([sys.executable, "-c", code]).returncode for _ in range(8)]
    assert codes == [0] * 8

"""The embedding shard format: vectors and row-aligned ids, readable with numpy and pyarrow."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mining import embedding_store
from mining.embedding_store import (
    ID_SCHEMA,
    LAYOUT_NAME,
    EmbeddingShardError,
    list_shards,
    load_ids,
    load_vectors,
    shard_layout,
    write_layout,
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


def test_the_layout_file_stands_for_the_headers_of_the_shards_it_records_at_their_size(
    tmp_path, monkeypatch
):
    vectors = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float16)
    directory = str(tmp_path / "lang=de")
    records = [
        write_shard(directory, 0, vectors[:7], ids(0, 7)),
        write_shard(directory, 1, vectors[7:10], ids(7, 3)),
    ]
    assert records[1] == {"npy": "shard-00001.npy", "rows": 3, "dim": 5, "dtype": "float16"} | {
        "bytes": os.path.getsize(tmp_path / "lang=de" / "shard-00001.npy")
    }
    write_layout(directory, records)
    write_shard(directory, 2, vectors[10:], ids(10, 2))  # dropped in later: not recorded
    headers = []
    checked = embedding_store._checked_shape
    monkeypatch.setattr(
        embedding_store,
        "_checked_shape",
        lambda path, size: headers.append(path) or checked(path, size),
    )
    assert shard_layout(str(tmp_path), "de").starts == (0, 7, 10, 12)
    assert [os.path.basename(path) for path in headers] == ["shard-00002.npy"]

    headers.clear()  # shard 1 replaced by one of 4 rows: its size no longer matches the record
    write_shard(directory, 1, np.concatenate([vectors[7:10], vectors[:1]]), ids(7, 4))
    layout = shard_layout(str(tmp_path), "de")
    assert layout.starts == (0, 7, 11, 13) and np.array_equal(layout.read_rows(10, 11), vectors[:1])
    assert [os.path.basename(path) for path in headers] == ["shard-00001.npy", "shard-00002.npy"]

    (tmp_path / "lang=de" / LAYOUT_NAME).write_text('{"shards": [{"rows": 7}]}')
    with pytest.raises(EmbeddingShardError, match=rf"lang=de/{LAYOUT_NAME}: not a readable layout"):
        shard_layout(str(tmp_path), "de")


def test_damaged_or_mismatched_shards_are_named(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float16)
    write_shard(str(tmp_path / "lang=de"), 0, vectors[:7], ids(0, 7))
    write_shard(str(tmp_path / "lang=de"), 1, vectors[7:], ids(7, 5))
    (npy0, parquet0), (npy1, _) = list_shards(str(tmp_path), "de")
    whole = open(npy1, "rb").read()
    open(npy1, "wb").write(whole[:-4])
    with pytest.raises(EmbeddingShardError, match=r"shard-00001.npy: 174 bytes where its header"):
        shard_layout(str(tmp_path), "de")
    open(npy1, "wb").write(whole + b"\0\0")
    with pytest.raises(EmbeddingShardError, match="cut short or damaged"):
        shard_layout(str(tmp_path), "de")
    np.save(npy1, np.zeros((5, 5), np.int8))
    with pytest.raises(EmbeddingShardError, match=r"int8 array of shape \(5, 5\), not"):
        shard_layout(str(tmp_path), "de")
    open(npy1, "wb").write(b"not numpy at all")
    with pytest.raises(EmbeddingShardError, match="shard-00001.npy: not a readable .npy file"):
        shard_layout(str(tmp_path), "de")
    open(npy1, "wb").write(whole)
    layout = shard_layout(str(tmp_path), "de")
    assert layout.read_ids(0, ["hash"]).column("hash").to_pylist() == list(range(7))
    pq.write_table(ids(0, 6), parquet0)  # one id row short: every later text would shift
    with pytest.raises(EmbeddingShardError, match=r"shard-00000.parquet: 6 id rows for the 7"):
        layout.read_ids(0, ["text"])
    open(parquet0, "wb").write(b"PAR1 cut")
    with pytest.raises(EmbeddingShardError, match=r"shard-00000.parquet: .*magic bytes"):
        layout.read_ids(0)


def test_index_reports_a_cut_shard_as_one_line(tmp_path):
    from pipelines.cli import cli
    from pipelines.stage_dir import StageWriter

    writer = StageWriter(str(tmp_path), "embeddings")
    write_shard(writer.path("lang=de"), 0, np.ones((4, 8), np.float16), ids(0, 4))
    writer.commit({}, {"encoder": "synthetic"})
    ((npy, _),) = list_shards(str(tmp_path / "embeddings"), "de")
    open(npy, "r+b").truncate(150)
    result = CliRunner().invoke(cli, ["index", "--run", str(tmp_path), "--langs", "de"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"ccmine: bad embeddings: {npy}: 150 bytes where its header (4 x 8 float16) needs "
        "192: cut short or damaged\n"
    )


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

"""The on-disk embedding format: per language, `.npy` shards with row-aligned Parquet id files.

    RUN/embeddings/lang=de/shard-00000.npy       (n, dim) float16 or float32, unit-length rows
    RUN/embeddings/lang=de/shard-00000.parquet   n rows: hash, text, url, record_id, position

Readable with numpy and pyarrow alone; embeddings computed elsewhere can be dropped in with
`write_shard` (or by writing the same two files) and mined.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

ID_SCHEMA = pa.schema(
    [
        ("hash", pa.int64()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("record_id", pa.string()),
        ("position", pa.int32()),
    ]
)


def lang_dir(embeddings_dir: str, lang: str) -> str:
    return FileSystems.join(embeddings_dir, f"lang={lang}")


def shard_names(index: int) -> tuple[str, str]:
    return f"shard-{index:05d}.npy", f"shard-{index:05d}.parquet"


def write_shard(directory: str, index: int, vectors: np.ndarray, ids: pa.Table) -> None:
    if len(vectors) != ids.num_rows:
        raise ValueError(f"{len(vectors)} vectors but {ids.num_rows} id rows")
    npy_name, parquet_name = shard_names(index)
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    with FileSystems.create(FileSystems.join(directory, npy_name)) as out:
        out.write(buffer.getvalue())
    sink = pa.BufferOutputStream()
    pq.write_table(ids.cast(ID_SCHEMA), sink)
    with FileSystems.create(FileSystems.join(directory, parquet_name)) as out:
        out.write(sink.getvalue().to_pybytes())


def list_shards(embeddings_dir: str, lang: str) -> list[tuple[str, str]]:
    """(npy, parquet) path pairs of a language, in shard order."""
    pattern = FileSystems.join(lang_dir(embeddings_dir, lang), "shard-*.npy")
    npys = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    return [(p, p[: -len(".npy")] + ".parquet") for p in npys]


def read_vectors(npy_path: str) -> np.ndarray:
    with FileSystems.open(npy_path) as stream:
        return np.load(io.BytesIO(stream.read()))


def shard_shape(npy_path: str) -> tuple[int, ...]:
    """Shape of a shard's vectors, from the .npy header alone."""
    with FileSystems.open(npy_path) as stream:
        fmt = np.lib.format
        version = fmt.read_magic(stream)
        header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, _ = header(stream)
    return shape


def shard_offsets(shards: list[tuple[str, str]]) -> list[tuple[int, str, int]]:
    """(shard number, npy path, id of its first row), rows numbered across shards in order."""
    offsets, first = [], 0
    for number, (npy, parquet) in enumerate(shards):
        offsets.append((number, npy, first))
        first += shard_rows(parquet)
    return offsets


def read_ids(parquet_path: str, columns: list[str] | None = None) -> pa.Table:
    with FileSystems.open(parquet_path) as stream:
        return pq.read_table(io.BytesIO(stream.read()), columns=columns)


def shard_rows(parquet_path: str) -> int:
    """Rows of a shard, from its Parquet footer (the vectors are not read)."""
    with FileSystems.open(parquet_path) as stream:
        return pq.ParquetFile(io.BytesIO(stream.read())).metadata.num_rows


def load_ids(embeddings_dir: str, lang: str, columns: list[str] | None = None) -> pa.Table:
    """The id rows of all shards of a language, in row order (vectors are not read)."""
    shards = list_shards(embeddings_dir, lang)
    if not shards:
        raise FileNotFoundError(f"no embedding shards for {lang} in {embeddings_dir}")
    return pa.concat_tables([read_ids(parquet, columns) for _, parquet in shards])


def load_vectors(embeddings_dir: str, lang: str, dtype=np.float32) -> np.ndarray:
    """The vectors of all shards of a language, in row order."""
    shards = list_shards(embeddings_dir, lang)
    if not shards:
        raise FileNotFoundError(f"no embedding shards for {lang} in {embeddings_dir}")
    return np.concatenate([read_vectors(npy) for npy, _ in shards]).astype(dtype)


def load_language(embeddings_dir: str, lang: str, columns: list[str] | None = None):
    """All shards of a language: (float32 vectors, id table), rows aligned."""
    return load_vectors(embeddings_dir, lang), load_ids(embeddings_dir, lang, columns)

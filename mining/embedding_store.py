"""The on-disk embedding format: per language, `.npy` shards with row-aligned Parquet id files.

    RUN/embeddings/lang=de/shard-00000.npy       (n, dim) float16 or float32, unit-length rows
    RUN/embeddings/lang=de/shard-00000.parquet   n rows: hash, text, url, record_id, position
    RUN/embeddings/lang=de/_layout.json          each shard's rows, dim, dtype and .npy size

Readable with numpy and pyarrow alone; embeddings computed elsewhere can be dropped in with
`write_shard` (or by writing the same two files) and mined. The layout file, written by the
embed stage, spares the readers of a language's layout opening every shard: on Cloud Storage,
reading an .npy header through Beam's file system downloads the file's first 16 MiB. A shard it
does not list, or lists with another size, has its header read.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from mining.whole_files import read_bytes, write_bytes

ID_SCHEMA = pa.schema(
    [
        ("hash", pa.int64()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("record_id", pa.string()),
        ("position", pa.int32()),
    ]
)


LAYOUT_NAME = "_layout.json"


class EmbeddingShardError(ValueError):
    """An embedding shard (written by `embed` or dropped in) that does not hold what its header
    or its vectors say: the message names the file."""


def lang_dir(embeddings_dir: str, lang: str) -> str:
    return FileSystems.join(embeddings_dir, f"lang={lang}")


def shard_names(index: int) -> tuple[str, str]:
    return f"shard-{index:05d}.npy", f"shard-{index:05d}.parquet"


def write_shard(directory: str, index: int, vectors: np.ndarray, ids: pa.Table) -> dict:
    """Writes shard `index` of a language directory; returns its record for `write_layout`."""
    if len(vectors) != ids.num_rows:
        raise ValueError(f"{len(vectors)} vectors but {ids.num_rows} id rows")
    rows, dim = vectors.shape
    npy_name, parquet_name = shard_names(index)
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    write_bytes(FileSystems.join(directory, npy_name), buffer.getvalue())
    sink = pa.BufferOutputStream()
    pq.write_table(ids.cast(ID_SCHEMA), sink)
    write_bytes(FileSystems.join(directory, parquet_name), sink.getvalue().to_pybytes())
    dtype = str(vectors.dtype)
    return {"npy": npy_name, "rows": rows, "dim": dim, "dtype": dtype, "bytes": buffer.tell()}


def write_layout(directory: str, records) -> None:
    """A language directory's layout file, from its shards' `write_shard` records."""
    shards = sorted({record["npy"]: record for record in records}.values(), key=lambda r: r["npy"])
    write_bytes(FileSystems.join(directory, LAYOUT_NAME), json.dumps({"shards": shards}).encode())


def _recorded_shards(directory: str) -> dict[str, tuple]:
    """{.npy name: (rows, dim, dtype, bytes)} from a language directory's layout file; empty
    without one."""
    path = FileSystems.join(directory, LAYOUT_NAME)
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return {}
    try:
        records = json.loads(data)["shards"]
        return {r["npy"]: (r["rows"], r["dim"], r["dtype"], r["bytes"]) for r in records}
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddingShardError(
            f"{path}: not a readable layout file ({exc!r}); delete it, and the shards' headers "
            "are read instead"
        ) from exc


def lang_of(path: str) -> str:
    """The language that a file's `lang=XX` directory names."""
    return path.rsplit("lang=", 1)[1].split("/", 1)[0]


def embedded_languages(embeddings_dir: str) -> list[str]:
    """The languages that have shards in an embeddings directory."""
    pattern = FileSystems.join(embeddings_dir, "lang=*", "shard-*.npy")
    return sorted({lang_of(m.path) for m in FileSystems.match([pattern])[0].metadata_list})


def _npy_files(embeddings_dir: str, lang: str) -> list:
    """The metadata (path, size) of a language's .npy shards, in shard order."""
    pattern = FileSystems.join(lang_dir(embeddings_dir, lang), "shard-*.npy")
    return sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path)


def _ids_path(npy_path: str) -> str:
    """The id file beside a shard's vectors."""
    return npy_path[: -len(".npy")] + ".parquet"


def list_shards(embeddings_dir: str, lang: str) -> list[tuple[str, str]]:
    """(npy, parquet) path pairs of a language, in shard order."""
    return [(m.path, _ids_path(m.path)) for m in _npy_files(embeddings_dir, lang)]


def read_vectors(npy_path: str) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(npy_path)))


def _npy_header(stream) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, byte offset of the data) from an .npy stream positioned at its start."""
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran_order, dtype = header(stream)
    if fortran_order:
        raise ValueError("embedding shards are stored in C order")
    return shape, dtype, stream.tell()


def read_row_range(npy_path: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of a shard, reading only those bytes."""
    with FileSystems.open(npy_path) as stream:
        (rows, dim), dtype, data_offset = _npy_header(stream)
        stop = min(stop, rows)
        row_bytes = dim * dtype.itemsize
        stream.seek(data_offset + start * row_bytes)
        data = stream.read(max(stop - start, 0) * row_bytes)
    return np.frombuffer(data, dtype=dtype).reshape(-1, dim)


@dataclass(frozen=True)
class ShardLayout:
    """A language's embedding shards and where their rows fall in the language's row ids:
    shard i holds rows starts[i] .. starts[i+1]-1 (see `shard_layout`)."""

    lang: str
    npys: tuple[str, ...]
    parquets: tuple[str, ...]
    starts: tuple[int, ...]  # one more than there are shards: the last is the row count
    dim: int

    @property
    def rows(self) -> int:
        return self.starts[-1]

    @property
    def shards(self) -> int:
        return len(self.npys)

    def shard_of(self, rows: np.ndarray) -> np.ndarray:
        """The shard holding each row id."""
        return np.searchsorted(np.asarray(self.starts[1:]), rows, side="right")

    def read_ids(self, shard: int, columns: list[str] | None = None) -> pa.Table:
        """A shard's id rows (`columns` of them), checked to be one per vector."""
        path = self.parquets[shard]
        try:
            table = read_parquet(path, columns)
        except (OSError, pa.ArrowException) as exc:
            raise EmbeddingShardError(f"{path}: {' '.join(str(exc).split())}") from exc
        vectors = self.starts[shard + 1] - self.starts[shard]
        if table.num_rows != vectors:
            raise EmbeddingShardError(
                f"{path}: {table.num_rows:,} id rows for the {vectors:,} vectors of "
                f"{self.npys[shard]}"
            )
        return table

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Vectors of rows [start, stop), across shard boundaries."""
        parts = []
        for shard in range(int(self.shard_of(np.array([start]))[0]), self.shards):
            first = self.starts[shard]
            if first >= stop:
                break
            parts.append(read_row_range(self.npys[shard], max(start - first, 0), stop - first))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


def shard_layout(embeddings_dir: str, lang: str) -> ShardLayout:
    """A language's layout from the listing of its .npy files and its layout file; the header
    of a shard that file does not record at the listed size is read and checked against the
    size instead."""
    files = _npy_files(embeddings_dir, lang)
    if not files:
        raise FileNotFoundError(f"no embedding shards for {lang} in {embeddings_dir}")
    recorded = _recorded_shards(lang_dir(embeddings_dir, lang))
    shapes = [_listed_shape(m, recorded.get(os.path.basename(m.path))) for m in files]
    dims = {shape[1] for shape in shapes}
    if len(dims) != 1:
        raise ValueError(f"{lang}: embedding shards of different dimensions {sorted(dims)}")
    npys = tuple(m.path for m in files)
    return ShardLayout(
        lang,
        npys,
        tuple(_ids_path(npy) for npy in npys),
        tuple(np.cumsum([0] + [shape[0] for shape in shapes]).tolist()),
        dims.pop(),
    )


def _listed_shape(metadata, recorded: tuple | None) -> tuple[int, int]:
    """A shard's (rows, dim): as the layout file records it, if that is of float16 or float32
    rows in a file of the listed size, else from its header."""
    if recorded is not None:
        rows, dim, dtype, size = recorded
        if size == metadata.size_in_bytes and dtype in ("float16", "float32"):
            return rows, dim
    return _checked_shape(metadata.path, metadata.size_in_bytes)


def _checked_shape(npy_path: str, size: int) -> tuple[int, int]:
    """A shard's (rows, dim), once its header says float16 or float32 rows and the file holds
    exactly the bytes that header needs (a shard cut short would misplace every later row)."""
    try:
        with FileSystems.open(npy_path) as stream:
            shape, dtype, offset = _npy_header(stream)
    except ValueError as exc:
        raise EmbeddingShardError(f"{npy_path}: not a readable .npy file: {exc}") from exc
    if len(shape) != 2 or dtype not in (np.float16, np.float32):
        raise EmbeddingShardError(
            f"{npy_path}: a {dtype} array of shape {shape}, not (rows, dim) float16 or float32"
        )
    needed = offset + shape[0] * shape[1] * dtype.itemsize
    if size != needed:
        raise EmbeddingShardError(
            f"{npy_path}: {size:,} bytes where its header ({shape[0]:,} x {shape[1]} {dtype}) "
            f"needs {needed:,}: cut short or damaged"
        )
    return shape


def read_parquet(parquet_path: str, columns: list[str] | None = None) -> pa.Table:
    """A whole Parquet file from any of Beam's file systems, decoded on the calling thread.

    The file's bytes are a Python object, and Arrow's column readers hold them until they are
    destroyed. With threads, a column's task is destroyed on Arrow's pool after its result is
    handed over; if that is as the interpreter exits, the pool thread cannot take the GIL to
    release the bytes and the process aborts ("terminate called without an active exception",
    apache/arrow#33975). gdb caught it so, in FileReaderImpl::DecodeRowGroups' task, after
    `ccmine run` had written everything (2 of 22 runs)."""
    source = pa.BufferReader(read_bytes(parquet_path))
    return pq.ParquetFile(source).read(columns=columns, use_threads=False)


def load_ids(embeddings_dir: str, lang: str, columns: list[str] | None = None) -> pa.Table:
    """The id rows of all shards of a language, in row order (vectors are not read)."""
    shards = list_shards(embeddings_dir, lang)
    if not shards:
        raise FileNotFoundError(f"no embedding shards for {lang} in {embeddings_dir}")
    return pa.concat_tables([read_parquet(parquet, columns) for _, parquet in shards])


def load_vectors(embeddings_dir: str, lang: str, dtype=np.float32) -> np.ndarray:
    """The vectors of all shards of a language, in row order."""
    shards = list_shards(embeddings_dir, lang)
    if not shards:
        raise FileNotFoundError(f"no embedding shards for {lang} in {embeddings_dir}")
    return np.concatenate([read_vectors(npy) for npy, _ in shards]).astype(dtype)


def load_language(embeddings_dir: str, lang: str, columns: list[str] | None = None):
    """All shards of a language: (float32 vectors, id table), rows aligned."""
    return load_vectors(embeddings_dir, lang), load_ids(embeddings_dir, lang, columns)

"""Index shards: a language's vectors in FAISS indexes of at most `shard_size` rows each.

    RUN/indexes/de.json                 encoder, dimension, count, type, parameters, shard list
    RUN/indexes/de/shard-00000.faiss    rows [start, stop) of de's embeddings, local ids 0..n-1
    RUN/indexes/de/shard-00000.json     the shard's own record (rows, encoder, embeddings run)

Each shard records the embeddings it was built from, so a shard copied from another run, a
truncated file or embeddings rebuilt after indexing are caught before mining starts.
"""

from __future__ import annotations

import os

from apache_beam.io.filesystems import FileSystems

from mining.json_files import read_json, read_json_files

# Default rows per index shard. A worker searching one holds its codes and, for IVF-PQ, its
# exact vectors for re-scoring: at 768 dimensions 1M rows are 0.2 GB of 4-bit codes plus 1.5 GB
# of float16 vectors (benchmarks/bench_scale.py, README "Scaling out").
SHARD_SIZE = 1_000_000


class IndexShardError(Exception):
    """An index (shard) that cannot be mined with: missing, incomplete or from other data."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")


def plan_shards(rows: int, shard_size: int) -> list[tuple[int, int, int]]:
    """(shard number, first row, end row) covering rows 0..rows-1 in shards of <= shard_size."""
    if shard_size < 1:
        raise ValueError(f"index shard size must be positive, not {shard_size}")
    return [
        (number, start, min(start + shard_size, rows))
        for number, start in enumerate(range(0, max(rows, 1), shard_size))
    ]


def meta_path(index_dir: str, lang: str) -> str:
    return FileSystems.join(index_dir, f"{lang}.json")


def shard_path(index_dir: str, lang: str, number: int) -> str:
    return FileSystems.join(index_dir, lang, f"shard-{number:05d}.faiss")


def shard_record_path(faiss_path: str) -> str:
    return faiss_path[: -len(".faiss")] + ".json"


def read_language_meta(index_dir: str, lang: str) -> dict:
    path = meta_path(index_dir, lang)
    if not FileSystems.exists(path):
        raise IndexShardError(path, "missing: the index stage built no index for this language")
    return read_json(path)


def check_language(index_dir: str, lang: str, embeddings_run: str, rows: int, dim: int) -> dict:
    """The language's index metadata after checking that every shard is there, complete and
    built from these embeddings (`embeddings_run`, `rows` rows of `dim` dimensions)."""
    meta = read_language_meta(index_dir, lang)
    where = meta_path(index_dir, lang)
    if meta.get("embeddings") != embeddings_run:
        raise IndexShardError(
            where, "built from other embeddings than the run's current ones: rerun `ccmine index`"
        )
    if meta["count"] != rows or meta["dim"] != dim:
        raise IndexShardError(
            where,
            f"indexes {meta['count']} vectors of {meta['dim']} dimensions, the embeddings "
            f"have {rows} of {dim}: rerun `ccmine index`",
        )
    listed = listed_sizes(FileSystems.join(index_dir, lang))
    paths, sizes, covered = [], [], 0
    for shard in meta["shards"]:
        path = FileSystems.join(index_dir, shard["path"])
        if shard["start"] != covered:
            raise IndexShardError(path, f"starts at row {shard['start']}, expected {covered}")
        covered = shard["stop"]
        sizes.append(listed_shard_size(listed, path, "missing"))
        paths.append(path)
    if covered != rows:
        raise IndexShardError(where, f"its shards cover {covered} rows of {rows}")
    records = read_json_files([shard_record_path(path) for path in paths])
    expected = {key: meta.get(key) for key in ("encoder", "dim", "embeddings", "factory")}
    for shard, path, size, record in zip(meta["shards"], paths, sizes, records, strict=True):
        for key, value in {**expected, "start": shard["start"], "stop": shard["stop"]}.items():
            if record.get(key) != value:  # before the size: a shard of another kind says why
                raise IndexShardError(
                    path, f"{key} is {record.get(key)!r}, the {lang} index has {value!r}"
                )
        if size != shard["bytes"]:
            raise IndexShardError(path, f"incomplete: {size} bytes, {shard['bytes']} written")
    return meta


def listed_sizes(directory: str) -> dict[str, int]:
    """{file name: bytes} of a language's shard files and records, from one listing (on Cloud
    Storage a request per 1,000 files, where asking after each file is a request per file)."""
    found = FileSystems.match([FileSystems.join(directory, "shard-*")])[0].metadata_list
    return {os.path.basename(m.path): m.size_in_bytes for m in found}


def listed_shard_size(listed: dict[str, int], path: str, reason: str) -> int:
    """A shard's size from its language's `listed_sizes`, once the shard and its record are
    both there (else an IndexShardError naming the one that is not, for `reason`)."""
    for required in (path, shard_record_path(path)):
        if os.path.basename(required) not in listed:
            raise IndexShardError(required, reason)
    return listed[os.path.basename(path)]


def check_loaded(index, path: str, rows: int, dim: int) -> None:
    """A shard as loaded by a worker holds the rows and dimension its record says."""
    if index.d != dim or index.ntotal != rows:
        raise IndexShardError(
            path, f"holds {index.ntotal} vectors of {index.d} dimensions, expected {rows} of {dim}"
        )

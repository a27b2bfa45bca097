"""`ccmine export`: mined bitext (Parquet parts) to a toolkit's format, streamed batch by batch.

Memory does not depend on the size of the bitext (Parquet is read in batches, and at most a few
batches per core are in flight), except with `--dedup`, which keeps one 64-bit hash per distinct
source sentence (or pair), in 8 bytes (mining/seen_hashes.py). Filters run while exporting, and
every pair they drop is counted under its reason. Batches are read and filtered in order on one
thread, rendered into the format on one thread per core (Arrow compute releases the GIL) and written
in order on one more thread, so that writing (for `hf`, Parquet encoding) overlaps reading. A local
export is written into OUT.incomplete/ and moved into place once complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from mining.bitext_formats import STDOUT, STREAM_FORMATS, open_writer
from mining.bitext_readers import unreadable
from mining.cores import usable_cores
from mining.inputs import matching_paths
from mining.seen_hashes import SeenHashes

BATCH_ROWS = 65_536
# Length units for --max-length-ratio: an English sentence has 3.1 characters per Chinese
# character (TICO-19 and Tatoeba), 2.2 per Japanese and 1.9 per Korean one, so Han characters
# count 3 and kana and Hangul 2.
HAN = r"[\p{Han}]"
KANA_HANGUL = r"[\p{Hiragana}\p{Katakana}\p{Hangul}]"
# Punctuation, symbols and spaces do not make two source sentences different for --dedup.
DEDUP_IGNORED = r"[\p{P}\p{S}\s]+"


@dataclass
class ExportFilters:
    min_score: float | None = None
    min_cosine: float | None = None
    max_length_ratio: float | None = None
    dedup: str | None = None  # None, "src" (one pair per normalised source) or "pair"


def bitext_parts(path: str) -> list[str]:
    """The Parquet parts of a bitext directory in name order (best first), or one file."""
    if path.endswith(".parquet"):
        return [path]
    pattern = FileSystems.join(path, "part-*.parquet")
    parts = matching_paths(pattern)
    if not parts:
        raise FileNotFoundError(f"no bitext parts (part-*.parquet) in {path}")
    return parts


def text_length(column: pa.Array) -> np.ndarray:
    """Length in Latin-character units: Han characters count 3, kana and Hangul 2."""
    length = pc.utf8_length(column).to_numpy(zero_copy_only=False).astype(np.float64)
    length += 2 * pc.count_substring_regex(column, HAN).to_numpy(zero_copy_only=False)
    length += pc.count_substring_regex(column, KANA_HANGUL).to_numpy(zero_copy_only=False)
    return length


def _hashes(strings: list[str]) -> np.ndarray:
    """BLAKE2b-64 of each string, as uint64."""
    digests = b"".join(hashlib.blake2b(s.encode(), digest_size=8).digest() for s in strings)
    return np.frombuffer(digests, dtype="<u8")


class PairFilter:
    """The export's filters, in order: score floor, cosine floor, length ratio, duplicates. Keeps
    the hashes seen for --dedup; the first occurrence is the best-scoring one because ccmine's
    parts are in score order (checked)."""

    def __init__(self, filters: ExportFilters):
        self.filters = filters
        self.seen = SeenHashes()
        self.last_score = np.inf
        self.dropped = {
            "below_min_score": 0,
            "below_min_cosine": 0,
            "length_ratio": 0,
            "duplicate": 0,
        }

    def _drop(self, keep: np.ndarray, failing: np.ndarray, reason: str) -> None:
        self.dropped[reason] += int(np.count_nonzero(keep & failing))
        keep &= ~failing

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        f = self.filters
        keep = np.ones(batch.num_rows, dtype=bool)
        for reason, name, floor in (
            ("below_min_score", "score", f.min_score),
            ("below_min_cosine", "cosine", f.min_cosine),
        ):
            if floor is not None:
                if name not in batch.schema.names:
                    raise ValueError(f"--min-{name} needs a {name} column")
                values = batch.column(name).to_numpy(zero_copy_only=False)
                self._drop(keep, values < floor, reason)
        if f.max_length_ratio is not None:
            a, b = text_length(batch.column("src_text")), text_length(batch.column("tgt_text"))
            ratio = np.maximum(a, b) / np.maximum(np.minimum(a, b), 1)
            self._drop(keep, ratio > f.max_length_ratio, "length_ratio")
        if f.dedup:
            self._drop(keep, self._duplicates(batch, keep), "duplicate")
        return batch if keep.all() else batch.filter(pa.array(keep))

    def _duplicates(self, batch: pa.RecordBatch, keep: np.ndarray) -> np.ndarray:
        if "score" in batch.schema.names and batch.num_rows:
            scores = batch.column("score").to_numpy(zero_copy_only=False)
            if scores[0] > self.last_score or np.any(np.diff(scores) > 0):
                raise ValueError("--dedup keeps the best pair, so it needs bitext in score order")
            self.last_score = scores[-1]
        kept = pa.array(keep)
        if self.filters.dedup == "src":
            key = pc.utf8_lower(batch.column("src_text").filter(kept))
            keys = pc.replace_substring_regex(key, DEDUP_IGNORED, "")
        else:
            src, tgt = (batch.column(name).filter(kept) for name in ("src_text", "tgt_text"))
            keys = pc.binary_join_element_wise(src, tgt, "\t")
        duplicate = np.zeros(batch.num_rows, dtype=bool)
        duplicate[np.flatnonzero(keep)] = ~self.seen.add(_hashes(keys.to_pylist()))
        return duplicate


def export(
    bitext: str,
    fmt: str,
    out: str,
    filters: ExportFilters | None = None,
    columns: list[str] | None = None,
    version: str = "0",
    progress=None,
) -> dict:
    """Export a bitext directory (or Parquet file); returns counts and the paths written."""
    columns = columns or []
    parts = bitext_parts(bitext)
    src, tgt, names = bitext_schema(bitext, parts[0])
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise ValueError(f"no column {', '.join(unknown)} in the bitext; it has {', '.join(names)}")
    filters = filters or ExportFilters()
    if out == STDOUT and fmt not in STREAM_FORMATS:
        streams = ", ".join(STREAM_FORMATS)
        raise ValueError(f"{fmt} is not written to standard output (--out -); {streams} are")
    if out.endswith("/") or (FileSystems.get_scheme(out) is None and os.path.isdir(out)):
        raise ValueError(f"{out} is a directory; --out names a file (moses: a prefix)")
    staging = _staging_dir(out)
    if staging:
        shutil.rmtree(staging, ignore_errors=True)  # left by an export that was killed
        out = os.path.join(staging, os.path.basename(out))
    writer = open_writer(fmt, out, src, tgt, columns, version)
    needed = columns_needed(fmt, columns, filters)
    pair_filter = PairFilter(filters)
    read = 0

    def kept_batches() -> Iterator[pa.RecordBatch]:
        nonlocal read
        for batch in _batches(parts, needed, writer.reads_dictionaries):
            read += batch.num_rows
            kept = pair_filter.apply(batch)
            if kept.num_rows:
                yield kept
            if progress:
                progress(batch.num_rows)

    batches = kept_batches()
    if writer.renders_on_threads:
        rendered = _rendered_in_order(writer.render, batches, usable_cores())
    else:
        rendered = map(writer.render, batches)
    try:
        _emit_in_order(writer.emit, rendered)
        written = writer.close()
    except BaseException:
        _discard(writer, staging)
        raise
    if staging:
        written = _published(written, staging)
    kept = read - sum(pair_filter.dropped.values())
    return {
        "read": read,
        "kept": kept,
        "dropped": pair_filter.dropped,
        "repaired": writer.counts,
        "written": written,
    }


def _staging_dir(out: str) -> str | None:
    """Where a local export is written until it is complete, OUT.incomplete/, so that an export
    that fails or is killed leaves no file that looks whole; None for object stores (gs://),
    which publish an object only once its upload completes, and standard output."""
    if out == STDOUT or FileSystems.get_scheme(out) is not None:
        return None
    return out + ".incomplete"


def _published(paths: list[str], staging: str) -> list[str]:
    """A complete export's files moved from its staging directory to beside it."""
    finals = [os.path.join(os.path.dirname(staging), os.path.basename(p)) for p in paths]
    for path, final in zip(paths, finals, strict=True):
        os.replace(path, final)
    os.rmdir(staging)
    return finals


def _discard(writer, staging: str | None) -> None:
    """Close a failed export's files and delete them (a part that turns out damaged stops an
    export after some batches are written; on gs:// closing publishes what was written)."""
    with contextlib.suppress(Exception):  # the export's own error is the one to report
        written = writer.close()
        if not staging:
            FileSystems.delete(written)
    if staging:
        shutil.rmtree(staging, ignore_errors=True)


def _batches(
    parts: list[str], needed: list[str] | None, dictionaries: bool = False
) -> Iterator[pa.RecordBatch]:
    """The parts' rows in batches, with the `needed` columns (None: all); with `dictionaries`,
    each string column a part stores as a dictionary (see `_dictionary_encoded`) read as one.

    Arrow reads a local part by its path: read through a Python file object, a part's bytes
    are Python objects that Arrow's decoding threads may release as the interpreter exits,
    which aborts it (see `read_parquet`); as fast, measured on 1M pairs."""
    for path in parts:
        rows = 0
        local = FileSystems.get_scheme(path) is None
        with contextlib.nullcontext(path) if local else FileSystems.open(path) as source:
            try:
                metadata = pq.read_metadata(source) if dictionaries else None
                encoded = _dictionary_encoded(metadata) if dictionaries else []
                parquet = pq.ParquetFile(source, metadata=metadata, read_dictionary=encoded)
                names = parquet.schema_arrow.names
                wanted = None if needed is None else [c for c in needed if c in names]
                for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
                    yield _fill_null_text(batch)
                    rows += batch.num_rows
            except (OSError, pa.ArrowException) as exc:
                raise unreadable(f"{path}: unreadable from row {rows:,} on", exc) from exc


def _dictionary_encoded(metadata: pq.FileMetaData) -> list[str]:
    """The string columns stored with under 4 bytes per row in every row group. A value Parquet
    stores plain (as it does once a dictionary page is full) takes at least 4, its length; a
    column that fell back to plain costs a hash per value when read as a dictionary (9 ms read
    dense, 42 ms as a dictionary for 250,000 distinct URLs)."""
    schema = metadata.schema.to_arrow_schema()
    strings = [field.name for field in schema if pa.types.is_string(field.type)]
    for r in range(metadata.num_row_groups):
        group = metadata.row_group(r)
        chunks = (group.column(c) for c in range(group.num_columns))
        small = {c.path_in_schema for c in chunks if c.total_uncompressed_size < 4 * group.num_rows}
        strings = [name for name in strings if name in small]
    return strings


def _in_order(fn, items: Iterable, threads: int, in_flight: int) -> Iterator:
    """fn(item) for each item, on `threads` threads, yielded in input order, with at most
    `in_flight` items submitted and not yet yielded (so memory stays bounded)."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="export") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            while len(pending) > in_flight or (pending and pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _rendered_in_order(render, batches: Iterable, threads: int) -> Iterator:
    """render(batch) for each batch, on `threads` threads, in input order, with at most
    2 x threads batches in flight."""
    return _in_order(render, batches, threads, 2 * threads)


def _emit_in_order(emit, items: Iterable, waiting: int = 2) -> None:
    """emit(item) for each item, in order, on one writer thread, with at most `waiting` items
    queued behind the one being written."""
    for _ in _in_order(emit, items, 1, waiting + 1):
        pass


def columns_needed(fmt: str, columns: list[str], filters: ExportFilters) -> list[str] | None:
    """The columns a format and the filters read (None: all of them)."""
    if fmt == "jsonl":
        return None
    needed = ["src_text", "tgt_text", *columns]
    if fmt in ("tmx", "hf") or filters.min_score is not None or filters.dedup:
        needed.append("score")
    if fmt in ("tmx", "hf") or filters.min_cosine is not None:
        needed.append("cosine")
    return list(dict.fromkeys(needed))


def bitext_schema(bitext: str, first_part: str) -> tuple[str, str, list[str]]:
    """(source language, target language, column names): the languages from the first row, or
    for an empty bitext from its directory's name (SRC-TGT)."""
    with FileSystems.open(first_part) as stream:
        try:
            parquet = pq.ParquetFile(stream)
        except (OSError, pa.ArrowException) as exc:
            raise unreadable(f"{first_part}: not readable as Parquet", exc) from exc
        names = parquet.schema_arrow.names
        if not {"src_lang", "tgt_lang", "src_text", "tgt_text"} <= set(names):
            raise ValueError(f"{first_part}: not ccmine bitext (no src_lang/tgt_lang columns)")
        if parquet.metadata.num_rows:
            first = parquet.read_row_group(0, columns=["src_lang", "tgt_lang"]).slice(0, 1)
            src, tgt = first.column("src_lang")[0].as_py(), first.column("tgt_lang")[0].as_py()
            return src, tgt, names
    name = bitext.rstrip("/").rsplit("/", 1)[-1]
    if name.count("-") != 1:
        raise ValueError(f"{bitext}: no pairs, and no SRC-TGT directory name to say the languages")
    src, tgt = name.split("-")
    return src, tgt, names


def _fill_null_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    columns = [
        pc.fill_null(c, "") if pa.types.is_string(c.type) and c.null_count else c
        for c in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)

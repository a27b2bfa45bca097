"""The formats MT toolkits read, written batch by batch with Arrow compute (no per-row Python).

- moses: PATH.SRC and PATH.TGT, one sentence per line, line-aligned (fairseq, Marian, OpenNMT,
  Sockeye);
- tsv: src TAB tgt [TAB extra columns], no header (OpusFilter, Bicleaner);
- jsonl: one JSON object per pair with every column;
- tmx: TMX 1.4 (OPUS, CAT tools), one <tu> per pair, the score as a <prop>;
- hf: Parquet (or JSON lines, for a .jsonl path) with a `translation` column {SRC: ..., TGT: ...},
  the layout of Hugging Face translation datasets; the Parquet carries the `datasets` feature
  metadata, so `load_dataset` gives a Translation feature.

Text that would break a format is repaired, and every repair is counted: line breaks (and tabs,
for TSV) become spaces in the line formats, characters XML does not allow are removed for TMX.
"""

from __future__ import annotations

import json
import sys
from xml.sax.saxutils import escape

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from mining.text_rows import Number, lines, value_buffers

FORMATS = ("moses", "tsv", "jsonl", "tmx", "hf")
STDOUT = "-"  # as --out: standard output, for the formats written as one text stream
STREAM_FORMATS = ("tsv", "jsonl", "tmx")
# Everything str.splitlines() breaks at, so every line-based reader sees one line per pair.
LINE_BREAKS = r"[\n\r\x0b\x0c\x1c\x1d\x1e\x85\x{2028}\x{2029}]"
# Characters outside XML 1.0's Char production.
XML_INVALID = r"[^\x09\x0a\x0d\x{20}-\x{D7FF}\x{E000}-\x{FFFD}\x{10000}-\x{10FFFF}]"
TMX_VERSION = "1.4"


# Characters LINE_BREAKS or XML_INVALID match beyond ASCII controls, as UTF-8 (lone surrogates
# cannot occur in valid UTF-8).
_SUSPECT_NON_ASCII = [c.encode() for c in "\x85\u2028\u2029\ufffe\uffff"]


def _holds_sequence(data: np.ndarray, sequence: bytes) -> bool:
    """Whether the bytes hold a byte sequence: the places of its first byte, then narrowed
    byte by byte (numpy on the buffer; no regex, no per-row work)."""
    at = np.flatnonzero(data[: len(data) - len(sequence) + 1] == sequence[0])
    for i, byte in enumerate(sequence[1:], 1):
        at = at[data[at + i] == byte]
    return bool(len(at))


def _suspect(data: bytes) -> bool:
    """Whether UTF-8 bytes hold an ASCII control (tabs and line breaks among them) or one of the
    few other characters the repairs are about (a sequence is looked for only where its first
    byte occurs at all)."""
    if not data:
        return False
    array = np.frombuffer(data, np.uint8)
    if array.min() < 0x20:
        return True
    return any(s[:1] in data and _holds_sequence(array, s) for s in _SUSPECT_NON_ASCII)


def _utf8(column: pa.Array):
    """The UTF-8 bytes of each chunk of a string column, as uint8 arrays."""
    for values in value_buffers(column):
        yield np.frombuffer(values, np.uint8)


def _column_bytes(column: pa.Array) -> list[bytes]:
    """The UTF-8 bytes of each chunk of a string column, copied into `bytes`, which `in`
    searches for one byte with memchr: on 5.8 MB the copy takes 0.1 ms and each search
    0.05 ms, against 0.3 ms for each numpy comparison."""
    return [values.to_pybytes() for values in value_buffers(column)]


def _may_need(column: pa.Array) -> bool:
    return any(_suspect(data) for data in _column_bytes(column))


def _held(column: pa.Array, characters: str) -> list[str]:
    """The ASCII characters among `characters` that a string column holds."""
    chunks = _column_bytes(column)
    return [c for c in characters if any(c.encode() in data for data in chunks)]


def _replace(column: pa.Array, pattern: str, replacement: str, counts: dict, name: str):
    """Regex-replace in a string column, counting the rows that needed it."""
    if not _may_need(column):
        return column
    hit = pc.match_substring_regex(column, pattern)
    rows = pc.sum(hit).as_py() or 0
    if not rows:
        return column
    counts[name] = counts.get(name, 0) + rows
    return pc.replace_substring_regex(column, pattern, replacement)


def _one_line(column, counts: dict, tabs: bool = False):
    column = _replace(column, LINE_BREAKS, " ", counts, "line_breaks_replaced")
    if tabs:
        column = _replace(column, "\t", " ", counts, "tabs_replaced")
    return column


def _write_buffers(out, buffers: list[pa.Buffer]) -> None:
    for buffer in buffers:
        out.write(memoryview(buffer))


def _json_string(column: pa.Array) -> list:
    """Values as JSON string literals: pieces for `lines` (quote, escaped value, quote). A
    dictionary column's dictionary is escaped, not its rows."""
    if pa.types.is_dictionary(column.type):
        escaped = _json_escaped(column.dictionary)
        return ['"', pa.DictionaryArray.from_arrays(column.indices, escaped), '"']
    return ['"', _json_escaped(column), '"']


def _json_escaped(column: pa.Array) -> pa.Array:
    held = _held(column, '\\"')
    if "\\" in held:
        column = pc.replace_substring(column, "\\", "\\\\")
    if '"' in held:
        column = pc.replace_substring(column, '"', '\\"')
    if any(data.min() < 0x20 for data in _utf8(column)):
        for code in range(0x20):
            column = pc.replace_substring(column, chr(code), f"\\u{code:04x}")
    return column


def _xml_text(column: pa.Array, counts: dict) -> pa.Array:
    column = _replace(column, XML_INVALID, "", counts, "xml_invalid_removed")
    entities = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}  # & first: the others bring one
    for character in _held(column, "&<>"):
        column = pc.replace_substring(column, character, entities[character])
    return column


class Writer:
    """Writes batches of bitext rows to PATH in one format; `counts` holds the repairs.

    `render` turns a batch into the format with Arrow compute and touches no shared state, so
    batches can be rendered on several threads (Arrow releases the GIL); `emit` writes rendered
    batches, in order, from one thread.
    """

    # Whether `render` takes string columns as dictionary arrays.
    reads_dictionaries = False
    # Whether `render` does enough work to be worth running on several threads.
    renders_on_threads = True

    def __init__(self, path: str, src: str, tgt: str, columns: list[str]):
        self.path, self.src, self.tgt, self.columns = path, src, tgt, columns
        self.counts: dict = {}

    def render(self, batch: pa.RecordBatch) -> tuple[object, dict]:
        """(the batch in this format, the repairs it needed)."""
        raise NotImplementedError

    def emit(self, rendered: tuple[object, dict]) -> None:
        payload, counts = rendered
        for name, rows in counts.items():
            self.counts[name] = self.counts.get(name, 0) + rows
        self._write(payload)

    def _write(self, payload) -> None:
        raise NotImplementedError

    def write(self, batch: pa.RecordBatch) -> None:
        self.emit(self.render(batch))

    def close(self) -> list[str]:
        """Finish; returns the paths written."""
        raise NotImplementedError


class _TextWriter(Writer):
    """One text stream (gzip when the path ends in .gz, through Beam's file systems), or
    standard output for STDOUT."""

    def __init__(self, path, src, tgt, columns):
        super().__init__(path, src, tgt, columns)
        self.out = sys.stdout.buffer if path == STDOUT else FileSystems.create(path)

    def _write(self, payload: list[pa.Buffer]) -> None:
        _write_buffers(self.out, payload)

    def close(self):
        if self.path == STDOUT:
            self.out.flush()
            return []
        self.out.close()
        return [self.path]


class MosesWriter(Writer):
    def __init__(self, path, src, tgt, columns):
        super().__init__(path, src, tgt, columns)
        stem, gz = (path[:-3], ".gz") if path.endswith(".gz") else (path, "")
        self.paths = [f"{stem}.{src}{gz}", f"{stem}.{tgt}{gz}"]
        self.outs = [FileSystems.create(p) for p in self.paths]

    def render(self, batch):
        counts: dict = {}
        sides = [lines(_one_line(batch.column(n), counts)) for n in ("src_text", "tgt_text")]
        return sides, counts

    def _write(self, sides):
        for out, buffers in zip(self.outs, sides, strict=True):
            _write_buffers(out, buffers)

    def close(self):
        for out in self.outs:
            out.close()
        return self.paths


class TsvWriter(_TextWriter):
    def render(self, batch):
        counts: dict = {}
        src, tgt = (_one_line(batch.column(n), counts, tabs=True) for n in ("src_text", "tgt_text"))
        pieces = [src, "\t", tgt]
        for name in self.columns:
            column = batch.column(name)
            if pa.types.is_floating(column.type):
                pieces += ["\t", Number(column)]
            elif pa.types.is_string(column.type):
                pieces += ["\t", _one_line(column, counts, tabs=True)]
            else:
                pieces += ["\t", pc.cast(column, pa.string())]
        return lines(*pieces), counts


class JsonlWriter(_TextWriter):
    """Every column, or for `hf` JSON lines only {"translation": {SRC: ..., TGT: ...}}."""

    def __init__(self, path, src, tgt, columns, translation_only: bool = False):
        super().__init__(path, src, tgt, columns)
        self.translation_only = translation_only
        self.reads_dictionaries = not translation_only

    def render(self, batch):
        if self.translation_only:
            parts = [
                f'{{"translation": {{"{self.src}": ',
                *_json_string(batch.column("src_text")),
                f', "{self.tgt}": ',
                *_json_string(batch.column("tgt_text")),
                "}}",
            ]
        else:
            parts = ["{"]
            for i, field in enumerate(batch.schema):
                column = batch.column(field.name)
                key = ("" if i == 0 else ", ") + f'"{field.name}": '
                if pa.types.is_string(field.type) or pa.types.is_dictionary(field.type):
                    parts += [key, *_json_string(column)]
                elif pa.types.is_floating(field.type):
                    parts += [key, Number(column, null="null")]
                else:
                    parts += [key, pc.fill_null(pc.cast(column, pa.string()), "null")]
            parts.append("}")
        return lines(*parts), {}


class TmxWriter(_TextWriter):
    """TMX 1.4: header (srclang is the source language), body, one tu per pair with its score and
    cosine as props and a tuv (xml:lang) with a seg per side."""

    def __init__(self, path, src, tgt, columns, version: str = "0"):
        super().__init__(path, src, tgt, columns)
        header = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<tmx version="{TMX_VERSION}">\n'
            f'  <header creationtool="ccmine" creationtoolversion="{escape(version)}" '
            f'datatype="plaintext" segtype="sentence" adminlang="en" srclang="{src}" '
            'o-tmf="ccmine"/>\n'
            "  <body>\n"
        )
        self.out.write(header.encode())

    def render(self, batch):
        counts: dict = {}
        parts = ["    <tu>\n"]
        for prop in ("score", "cosine"):
            if prop in batch.schema.names:
                parts += [f'      <prop type="{prop}">', Number(batch.column(prop)), "</prop>\n"]
        for lang, name in ((self.src, "src_text"), (self.tgt, "tgt_text")):
            text = _xml_text(batch.column(name), counts)
            parts += [f'      <tuv xml:lang="{lang}"><seg>', text, "</seg></tuv>\n"]
        parts.append("    </tu>")
        return lines(*parts), counts

    def close(self):
        self.out.write(b"  </body>\n</tmx>\n")
        return super().close()


class HfParquetWriter(Writer):
    """Parquet with a `translation` struct column (and the score and cosine, if present)."""

    # `render` only wraps the batch's columns; the writer's encoding is the work. Rendered on
    # the reading thread instead of a pool, 1M pairs took 0.277 s instead of 0.306 (medians of
    # 12 interleaved runs, 2 cores); bench_export gave 3.62M-3.81M pairs/s against 3.50M-3.63M.
    renders_on_threads = False

    def __init__(self, path, src, tgt, columns):
        super().__init__(path, src, tgt, columns)
        self.out = FileSystems.create(path)
        self.parquet = None

    def render(self, batch):
        translation = pa.StructArray.from_arrays(
            [batch.column("src_text"), batch.column("tgt_text")], names=[self.src, self.tgt]
        )
        extra = [n for n in ("score", "cosine") if n in batch.schema.names]
        return pa.table({"translation": translation, **{n: batch.column(n) for n in extra}}), {}

    def _write(self, table):
        if self.parquet is None:
            extra = [n for n in ("score", "cosine") if n in table.schema.names]
            features = {"translation": {"languages": [self.src, self.tgt], "_type": "Translation"}}
            features.update({n: {"dtype": "float32", "_type": "Value"} for n in extra})
            metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
            self.schema = table.schema.with_metadata(metadata)
            # Mined sentences are nearly all distinct, so dictionary pages only cost: without them
            # writing took half the time (1M synthetic pairs) and 27,077 mined de-en pairs came
            # out 6% smaller. Statistics only for the numbers, which readers filter on: a
            # sentence's minimum and maximum serve no query and took 1 of 15.7 ms per 65,536
            # pairs (the rest is mostly Snappy).
            self.parquet = pq.ParquetWriter(
                self.out, self.schema, use_dictionary=False, write_statistics=extra
            )
        self.parquet.write_table(table.cast(self.schema))

    def close(self):
        if self.parquet is None:  # nothing passed the filters: still a valid, empty file
            self.write(
                pa.RecordBatch.from_pydict(
                    {"src_text": pa.array([], pa.string()), "tgt_text": pa.array([], pa.string())}
                )
            )
        self.parquet.close()
        self.out.close()
        return [self.path]


def open_writer(fmt: str, path: str, src: str, tgt: str, columns: list[str], version: str):
    if fmt == "moses":
        return MosesWriter(path, src, tgt, columns)
    if fmt == "tsv":
        return TsvWriter(path, src, tgt, columns)
    if fmt == "jsonl":
        return JsonlWriter(path, src, tgt, columns)
    if fmt == "tmx":
        return TmxWriter(path, src, tgt, columns, version)
    if fmt == "hf":
        if path.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            return JsonlWriter(path, src, tgt, columns, translation_only=True)
        return HfParquetWriter(path, src, tgt, columns)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")

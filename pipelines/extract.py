"""Extract stage: WARC/WET files to de-duplicated, language-identified sentences in Parquet.

Each input file is read and split into sentences in one chain of steps, and its sentences are
written as a work unit (`_units/file-N.parquet`, with the file's counts) when its last document
is done. A killed or failed extract keeps its temporary place; a rerun with the same
configuration reads only the files not finished and takes the others' sentences from their
units, then de-duplicates all of them: the result equals an uninterrupted run's. One step writes
every language's sentences, in parts cut by hash, so the pipeline has the same steps for any
number of languages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from mining.embedding_store import read_parquet
from mining.extraction import ExtractConfig, SentenceExtractor
from mining.inputs import download_counts, open_input
from mining.json_files import read_unit_records
from mining.langid import LanguageIdentifier
from mining.warc_records import DEFAULT_MAX_RECORD_BYTES, BadInputError, Skipped, iter_records
from mining.whole_files import write_bytes
from pipelines.counts import add_counts
from pipelines.progress import Progress
from pipelines.stage_dir import UNITS, StageWriter, read_json, run_pipeline, write_json

NAMESPACE = "extract"
STAGE = "sentences"
CONTENT_IDS = "_content_ids.json"  # written by the pipeline, moved into the marker
# Sentences per Parquet part of a language: a language of N sentences is cut into
# ceil(N / ROWS_PER_PART) parts by hash. A part is held while it is sorted and written: 250,000
# sentences of the bundled sample are 68 MB as Arrow, twice that while sorted.
ROWS_PER_PART = 250_000
log = logging.getLogger("ccmine")

SENTENCE_SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("lang", pa.string()),
        ("lid_prob", pa.float32()),
        ("url", pa.string()),
        ("record_id", pa.string()),
        ("position", pa.int32()),
        ("hash", pa.int64()),
        ("source", pa.string()),
    ]
)
# The record types of the WARC 1.1 specification; others (damaged headers) count as "other".
WARC_TYPES = frozenset(
    {
        "warcinfo",
        "response",
        "resource",
        "request",
        "metadata",
        "revisit",
        "conversion",
        "continuation",
    }
)
# Skip reasons that describe ordinary web content rather than damaged input.
ORDINARY_SKIPS = frozenset({"record_type", "http_status", "not_html", "no_text"})


def _count(name: str, n: int = 1, file_counts: Counter | None = None) -> None:
    """A Beam counter, and the file's own count (kept with its work unit) when given."""
    Metrics.counter(NAMESPACE, name).inc(n)
    if file_counts is not None:
        file_counts[name] += n


@dataclass
class FileDone:
    """Follows a file's last document through reading and extraction, gathering the file's
    counts on the way."""

    path: str
    counts: Counter


def _skip(event: Skipped, strict: bool) -> None:
    if event.reason not in ORDINARY_SKIPS:
        if strict:
            raise BadInputError(event.describe())
        log.debug("skipped %s", event.describe())  # counted in the table; listed with -v


class ReadDocuments(beam.DoFn):
    """One input file in, its content records out; every record read is counted once."""

    def __init__(self, max_record_bytes: int, strict: bool):
        self.max_record_bytes = max_record_bytes
        self.strict = strict

    def process(self, path: str):
        progress = Progress(path, "records")
        counts: Counter = Counter()
        _count("files_read", 1, counts)
        with open_input(path) as stream:
            for event in iter_records(stream, path, self.max_record_bytes):
                if isinstance(event, Skipped) and event.reason == "resynced":  # damage, skipped
                    _count("resynced", 1, counts)
                    _count("bytes_skipped", event.skipped_bytes, counts)
                    _skip(event, self.strict)
                    continue
                if event.rec_type is None:  # the file itself is not a WARC file, or empty
                    _count(f"files_with_errors:{event.reason}", 1, counts)
                    _skip(event, self.strict)
                    continue
                progress.step()
                rec_type = event.rec_type if event.rec_type in WARC_TYPES else "other"
                _count(f"records_read:{rec_type}", 1, counts)
                if isinstance(event, Skipped):
                    _count(f"records_skipped:{event.reason}", 1, counts)
                    _skip(event, self.strict)
                else:
                    yield event
            for name, n in download_counts(stream).items():
                _count(name, n, counts)
        progress.done()
        yield FileDone(path, counts)


class ExtractSentences(beam.DoFn):
    """Document to sentence rows; the fastText model is loaded once per DoFn instance."""

    def __init__(self, config: ExtractConfig, lid_model: str | None, strict: bool):
        self.config = config
        self.lid_model = lid_model
        self.strict = strict

    def setup(self):
        self.extractor = SentenceExtractor(self.config, LanguageIdentifier(self.lid_model))
        self.file_counts: dict[str, Counter] = {}

    def process(self, doc):
        if isinstance(doc, FileDone):  # the file's documents are all done: pass its counts on
            doc.counts.update(self.file_counts.pop(doc.path, Counter()))
            yield doc
            return
        counts = self.file_counts.setdefault(doc.source, Counter())
        result = self.extractor.process(doc)
        if result.skipped_reason:
            _count(f"records_skipped:{result.skipped_reason}", 1, counts)
            _skip(Skipped(result.skipped_reason, doc.source, doc.offset, doc.url), self.strict)
            return
        _count("records_used", 1, counts)
        _count("sentences_split", result.candidates, counts)
        _count("sentences_lid_vouched_by_document", result.vouched_by_document, counts)
        for reason, n in result.dropped.items():
            _count(f"sentences_dropped:{reason}", n, counts)
        for sentence in result.sentences:
            yield sentence.as_row()


class WriteFileUnits(beam.DoFn):
    """Writes each file's sentences as they come (`_units/file-N.parquet`) and, when the file is
    done, its record with the file's counts; passes the sentences on."""

    BATCH = 10_000

    def __init__(self, units_dir: str, numbers: dict[str, int]):
        self.units_dir = units_dir
        self.numbers = numbers  # input path -> its number in the input list

    def start_bundle(self):
        self.open: dict[str, dict] = {}  # path -> stream, writer, pending rows, rows written

    def _unit(self, path: str) -> dict:
        if path not in self.open:
            stream = FileSystems.create(unit_file(self.units_dir, self.numbers[path], "parquet"))
            writer = pq.ParquetWriter(stream, SENTENCE_SCHEMA)
            self.open[path] = {"stream": stream, "writer": writer, "pending": [], "rows": 0}
        return self.open[path]

    @staticmethod
    def _flush(unit: dict) -> None:
        if unit["pending"]:
            unit["writer"].write_table(pa.Table.from_pylist(unit["pending"], SENTENCE_SCHEMA))
            unit["rows"] += len(unit["pending"])
            unit["pending"] = []

    def process(self, item):
        if not isinstance(item, FileDone):
            unit = self._unit(item["source"])
            unit["pending"].append(item)
            if len(unit["pending"]) >= self.BATCH:
                self._flush(unit)
            yield item
            return
        unit = self._unit(item.path)
        self._flush(unit)
        unit["writer"].close()
        unit["stream"].close()
        del self.open[item.path]
        number = self.numbers[item.path]
        written = FileSystems.match([unit_file(self.units_dir, number, "parquet")])[0]
        record = {
            "path": item.path,
            "rows": unit["rows"],
            "bytes": written.metadata_list[0].size_in_bytes,
            "counts": dict(item.counts),
        }
        write_bytes(unit_file(self.units_dir, number, "json"), json.dumps(record).encode())

    def finish_bundle(self):
        if self.open:  # a file's sentences and its end always travel together
            raise RuntimeError(f"files left unfinished at the end of a bundle: {list(self.open)}")


def unit_file(units_dir: str, number: int, suffix: str) -> str:
    return FileSystems.join(units_dir, _unit_name(number, suffix))


def _unit_name(number: int, suffix: str) -> str:
    return f"file-{number:06d}.{suffix}"


def finished_files(units_dir: str, paths: list[str]) -> dict[str, dict]:
    """{input path: its unit record} of the files a killed run finished: recorded for that
    input, with the unit's sentences listed at the recorded size (one listing of the units and
    a read of each record; no unit is opened)."""
    found = FileSystems.match([FileSystems.join(units_dir, "file-*")])[0].metadata_list
    sizes = {os.path.basename(m.path): m.size_in_bytes for m in found}
    numbers = [n for n in range(len(paths)) if _unit_name(n, "json") in sizes]
    records = read_unit_records([unit_file(units_dir, n, "json") for n in numbers])
    return {
        paths[number]: record
        for number, record in zip(numbers, records, strict=True)
        if record is not None
        and record["path"] == paths[number]
        and sizes.get(_unit_name(number, "parquet")) == record.get("bytes")
    }


def read_unit(path: str):
    yield from read_parquet(path).to_pylist()


class FirstOccurrence(beam.CombineFn):
    """Keeps the earliest (url, record_id, position) of identical sentences, and their count."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, acc, row):
        return self.merge_accumulators([acc, (row, 1)])

    def merge_accumulators(self, accs):
        best, n = None, 0
        for row, count in accs:
            n += count
            if row is not None and (best is None or _order(row) < _order(best)):
                best = row
        return best, n

    def extract_output(self, acc):
        return acc


def _order(row: dict) -> tuple:
    return row["url"], row["record_id"], row["position"]


def _count_duplicates(kept_and_count):
    row, n = kept_and_count
    if n > 1:
        _count("sentences_dropped:duplicate", n - 1)
    _count(f"sentences_kept:{row['lang']}")
    return row


def row_id(row: dict) -> int:
    """A 64-bit id of what the embed stage reads of a sentence row."""
    fields = [row[name] for name in ("hash", "text", "url", "record_id", "position")]
    digest = hashlib.blake2b(json.dumps(fields).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class ContentId(beam.CombineFn):
    """A language's content id: its row count and the sum of its rows' ids modulo 2**64, which
    does not depend on the order the rows arrive in (nor on the files they are written to)."""

    def create_accumulator(self):
        return 0, 0

    def add_input(self, acc, row_id_):
        return acc[0] + 1, (acc[1] + row_id_) % 2**64

    def merge_accumulators(self, accs):
        counts, sums = zip(*accs, strict=True)
        return sum(counts), sum(sums) % 2**64

    def extract_output(self, acc):
        return f"{acc[0]}:{acc[1]:016x}"


def content_rows(content_id: str) -> int | None:
    """The row count in a language's content id; None for an id of another kind (the run id
    that stands for sentences dropped in by hand)."""
    rows, _, digest = content_id.partition(":")
    return int(rows) if rows.isdigit() and len(digest) == 16 else None


def build_pipeline(
    pipeline: beam.Pipeline,
    paths: list[str],
    out_dir: str,
    config: ExtractConfig,
    lid_model: str | None = None,
    strict: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    finished: dict | None = None,
) -> None:
    """Files to sentences; `finished` files (a killed run's units) are not read again."""
    langs = list(config.langs)
    finished = finished or {}
    units_dir = FileSystems.join(out_dir, UNITS)
    content_ids_path = FileSystems.join(out_dir, CONTENT_IDS)
    numbers = {path: number for number, path in enumerate(paths)}
    new = (
        pipeline
        | "ListFiles" >> beam.Create([p for p in paths if p not in finished])
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadWarc" >> beam.ParDo(ReadDocuments(max_record_bytes, strict))
        | "ExtractSentences" >> beam.ParDo(ExtractSentences(config, lid_model, strict))
        | "WriteFileUnits" >> beam.ParDo(WriteFileUnits(units_dir, numbers))
    )
    reused = (
        pipeline
        | "FinishedFiles"
        >> beam.Create([unit_file(units_dir, numbers[p], "parquet") for p in finished])
        | "ReadUnits" >> beam.FlatMap(read_unit)
    )
    sentences = (
        (new, reused)
        | "AllSentences" >> beam.Flatten()
        | "KeyByLangHash" >> beam.Map(lambda row: ((row["lang"], row["hash"]), row))
        | "Deduplicate" >> beam.CombinePerKey(FirstOccurrence())
        | "DropKey" >> beam.Values()
        | "CountKept" >> beam.Map(_count_duplicates)
    )
    _ = (
        sentences
        | "RowIds" >> beam.Map(lambda row: (row["lang"], row_id(row)))
        | "ContentIds" >> beam.CombinePerKey(ContentId())
        | "AllContentIds" >> beam.combiners.ToDict()
        | "WriteContentIds" >> beam.Map(lambda ids: write_json(content_ids_path, ids))
    )
    counts = beam.pvalue.AsDict(
        sentences
        | "Languages" >> beam.Map(lambda row: row["lang"])
        | "CountPerLanguage" >> beam.combiners.Count.PerElement()
    )
    _ = (
        sentences
        | "KeyByPart" >> beam.Map(_keyed_by_part, counts)
        | "GroupParts" >> beam.GroupByKey()
        | "WriteParts" >> beam.ParDo(WriteSentencePart(out_dir))
    )
    _ = (
        pipeline
        | "RequestedLanguages" >> beam.Create(langs)
        | "WriteEmptyLanguages" >> beam.Map(_write_if_empty, out_dir, counts)
    )


def part_count(rows: int) -> int:
    return max(1, -(-rows // ROWS_PER_PART))


def part_path(out_dir: str, lang: str, part: int, parts: int) -> str:
    return FileSystems.join(out_dir, f"lang={lang}", f"part-{part:05d}-of-{parts:05d}.parquet")


def _keyed_by_part(row: dict, counts: dict[str, int]):
    """((language, part, parts), row)."""
    parts = part_count(counts[row["lang"]])
    return (row["lang"], row["hash"] % parts, parts), row


class WriteSentencePart(beam.DoFn):
    """Writes one part of a language, `lang=XX/part-PPPPP-of-NNNNN.parquet`, its rows sorted
    by page and position: the name and the content depend only on the sentences, so a retried
    part overwrites itself with the same file, and reruns write identical files."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def process(self, keyed):
        (lang, part, parts), rows = keyed
        batches, pending = [], []
        for row in rows:
            pending.append(row)
            if len(pending) == WriteFileUnits.BATCH:
                batches.append(pa.RecordBatch.from_pylist(pending, SENTENCE_SCHEMA))
                pending = []
        batches.append(pa.RecordBatch.from_pylist(pending, SENTENCE_SCHEMA))
        table = pa.Table.from_batches(batches)
        order = [(name, "ascending") for name in ("url", "record_id", "position", "hash")]
        table = table.take(pc.sort_indices(table, order))
        path = part_path(self.out_dir, lang, part, parts)
        with FileSystems.create(path) as stream:
            pq.write_table(table, stream)


def _write_if_empty(lang: str, out_dir: str, counts: dict[str, int]) -> None:
    """An empty part for a requested language no sentence was kept of, so that the language's
    directory says it was asked for."""
    if lang not in counts:
        with FileSystems.create(part_path(out_dir, lang, 0, 1)) as stream:
            pq.write_table(SENTENCE_SCHEMA.empty_table(), stream)


def run(
    paths: list[str],
    run_dir: str,
    config: ExtractConfig,
    lid_model: str | None = None,
    strict: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    beam_args: list[str] | None = None,
) -> dict:
    """Run the extract stage and commit RUN_DIR/sentences; returns the stats written there."""
    config_record = stage_config(paths, config, lid_model, max_record_bytes)
    writer = StageWriter(run_dir, STAGE, resume=config_record)
    finished = finished_files(writer.path(UNITS), paths) if writer.resumed else {}
    if finished:
        log.info("extract: resuming, %d of %d files already finished", len(finished), len(paths))
    stats = run_pipeline(
        writer,
        lambda p: build_pipeline(
            p, paths, writer.path(), config, lid_model, strict, max_record_bytes, finished
        ),
        beam_args,
        NAMESPACE,
    )
    content_ids = read_json(writer.path(CONTENT_IDS))
    FileSystems.delete([writer.path(CONTENT_IDS)])
    for record in finished.values():  # the finished files' own counts, as if read now
        add_counts(stats, record["counts"])
    if finished:
        stats["resumed"] = {"files_reused": len(finished)}
    stats["inputs"] = paths
    writer.commit(stats, config_record, outputs=content_ids)
    return stats


def stage_config(paths, config: ExtractConfig, lid_model, max_record_bytes) -> dict:
    return {
        **asdict(config),
        "lid_model": lid_model,
        "max_record_bytes": max_record_bytes,
        "inputs": list(paths),
    }

"""Extract stage: WARC/WET files to de-duplicated, language-identified sentences in Parquet."""

from __future__ import annotations

import logging
from dataclasses import asdict

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from mining.extraction import ExtractConfig, SentenceExtractor
from mining.inputs import open_input
from mining.langid import LanguageIdentifier
from mining.warc_records import DEFAULT_MAX_RECORD_BYTES, BadInputError, Skipped, iter_records
from pipelines.progress import Progress
from pipelines.stage_dir import StageWriter, run_pipeline

NAMESPACE = "extract"
STAGE = "sentences"
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


def _count(name: str, n: int = 1) -> None:
    Metrics.counter(NAMESPACE, name).inc(n)


def _skip(event: Skipped, strict: bool) -> None:
    if event.reason not in ORDINARY_SKIPS:
        if strict:
            raise BadInputError(event.describe())
        log.warning("skipped %s", event.describe())


class ReadDocuments(beam.DoFn):
    """One input file in, its content records out; every record read is counted once."""

    def __init__(self, max_record_bytes: int, strict: bool):
        self.max_record_bytes = max_record_bytes
        self.strict = strict

    def process(self, path: str):
        progress = Progress(path, "records")
        _count("files_read")
        with open_input(path) as stream:
            for event in iter_records(stream, path, self.max_record_bytes):
                if isinstance(event, Skipped) and event.reason == "resynced":  # damage, skipped
                    _count("resynced")
                    _count("bytes_skipped", event.skipped_bytes)
                    _skip(event, self.strict)
                    continue
                if event.rec_type is None:  # the file itself is not a WARC file, or empty
                    _count(f"files_with_errors:{event.reason}")
                    _skip(event, self.strict)
                    continue
                progress.step()
                rec_type = event.rec_type if event.rec_type in WARC_TYPES else "other"
                _count(f"records_read:{rec_type}")
                if isinstance(event, Skipped):
                    _count(f"records_skipped:{event.reason}")
                    _skip(event, self.strict)
                else:
                    yield event
        progress.done()


class ExtractSentences(beam.DoFn):
    """Document to sentence rows; the fastText model is loaded once per DoFn instance."""

    def __init__(self, config: ExtractConfig, lid_model: str | None, strict: bool):
        self.config = config
        self.lid_model = lid_model
        self.strict = strict

    def setup(self):
        self.extractor = SentenceExtractor(self.config, LanguageIdentifier(self.lid_model))

    def process(self, doc):
        result = self.extractor.process(doc)
        if result.skipped_reason:
            _count(f"records_skipped:{result.skipped_reason}")
            _skip(Skipped(result.skipped_reason, doc.source, doc.offset, doc.url), self.strict)
            return
        _count("records_used")
        _count("sentences_split", result.candidates)
        for reason, n in result.dropped.items():
            _count(f"sentences_dropped:{reason}", n)
        for sentence in result.sentences:
            yield sentence.as_row()


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


def build_pipeline(
    pipeline: beam.Pipeline,
    paths: list[str],
    out_dir: str,
    config: ExtractConfig,
    lid_model: str | None = None,
    strict: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> None:
    langs = list(config.langs)
    sentences = (
        pipeline
        | "ListFiles" >> beam.Create(paths)
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadWarc" >> beam.ParDo(ReadDocuments(max_record_bytes, strict))
        | "SpreadDocuments" >> beam.Reshuffle()
        | "ExtractSentences" >> beam.ParDo(ExtractSentences(config, lid_model, strict))
        | "KeyByLangHash" >> beam.Map(lambda row: ((row["lang"], row["hash"]), row))
        | "Deduplicate" >> beam.CombinePerKey(FirstOccurrence())
        | "DropKey" >> beam.Values()
        | "CountKept" >> beam.Map(_count_duplicates)
    )
    per_lang = sentences | "ByLanguage" >> beam.Partition(
        lambda row, n: langs.index(row["lang"]), len(langs)
    )
    for lang, rows in zip(langs, per_lang, strict=True):
        _ = rows | f"Write_{lang}" >> beam.io.WriteToParquet(
            f"{out_dir}/lang={lang}/part",
            SENTENCE_SCHEMA,
            file_name_suffix=".parquet",
        )


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
    writer = StageWriter(run_dir, STAGE)
    stats = run_pipeline(
        writer,
        lambda p: build_pipeline(
            p, paths, writer.path(), config, lid_model, strict, max_record_bytes
        ),
        beam_args,
        NAMESPACE,
    )
    stats["inputs"] = paths
    writer.commit(stats, stage_config(paths, config, lid_model, max_record_bytes))
    return stats


def stage_config(paths, config: ExtractConfig, lid_model, max_record_bytes) -> dict:
    return {
        **asdict(config),
        "lid_model": lid_model,
        "max_record_bytes": max_record_bytes,
        "inputs": list(paths),
    }

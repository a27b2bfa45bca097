"""Embed stage: sentences to embedding shards through Beam RunInference, resumable by shard.

Rows are grouped by shard first; each shard's rows then go through RunInference in chunks that
depend only on the shard's rows (so a rerun writes the same vectors), and the shard is written
as soon as its last vector arrives, with a record under `_units/`. A killed run leaves its
finished shards in the stage's temporary place: a rerun with the same configuration drops the
rows of those shards before encoding and encodes only the rest. Once every shard of a language
is written, its records go into the language's layout file (see mining/embedding_store.py).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

from mining.embedding_store import (
    ID_SCHEMA,
    lang_dir,
    lang_of,
    shard_names,
    write_layout,
    write_shard,
)
from mining.inputs import matching_paths
from mining.json_files import read_unit_records
from mining.whole_files import write_bytes
from pipelines.extract import content_rows
from pipelines.progress import Progress
from pipelines.stage_dir import (
    UNITS,
    StageError,
    StageWriter,
    content_id,
    output_ids,
    output_stats,
    require_complete,
    reusable_langs,
    run_pipeline,
)

NAMESPACE = "embed"
CHUNK_ROWS = 1024  # rows per encoder call; the encoder batches them by length
log = logging.getLogger("ccmine")
STAGE = "embeddings"
ID_COLUMNS = [field.name for field in ID_SCHEMA]


def _count(name: str, n: int = 1) -> None:
    if n:
        Metrics.counter(NAMESPACE, name).inc(n)


class SentenceEncoderHandler(ModelHandler):
    """RunInference handler: one encoder per worker process (one per machine on GPU).

    Each element is a chunk of a shard's rows (see `_shard_chunks`), encoded in one call: the
    vectors do not depend on how a runner happens to batch elements, so every run of the same
    configuration writes the same shards. (A sentence's float32 vector moves by about 2e-7 with
    the other sentences of its batch, enough to change a float16 value now and then and to flip
    near-ties in mining, such as a Simplified and a Traditional Chinese copy of one sentence.)
    """

    def __init__(self, encoder: str, device: str, batch_size: int, threads: int):
        super().__init__(min_batch_size=1, max_batch_size=1, large_model=device.startswith("cuda"))
        self.encoder = encoder
        self.device = device
        self.batch_size = batch_size
        self.threads = threads
        self.progress = None  # made in the worker, by the first call

    def load_model(self):
        import torch

        from mining.encoders import load_encoder

        if self.threads:
            torch.set_num_threads(self.threads)
        return load_encoder(self.encoder, self.device)

    def run_inference(self, batch, model, inference_args=None):
        before = Counter(model.stats)
        encoded = [(chunk, model.encode(chunk.texts, self.batch_size)) for chunk in batch]
        for key, value in (model.stats - before).items():
            _count(key, value)
        self.progress = self.progress or Progress("embed", "sentences encoded by this worker")
        self.progress.step(sum(len(chunk.rows) for chunk in batch))
        return encoded

    def get_metrics_namespace(self) -> str:
        return "ccmine_embed_inference"


class WriteShards(beam.DoFn):
    """Collects each shard's encoded chunks (they arrive together, in one bundle) and writes the
    shard, rows ordered by hash, as soon as it is complete; then records it as finished and
    yields (language, its layout record)."""

    def __init__(self, out_dir: str, dtype: str):
        self.out_dir = out_dir
        self.dtype = dtype

    def start_bundle(self):
        self.pending: dict = {}

    def process(self, item):
        chunk, vectors = item
        key = (chunk.lang, chunk.shard)
        rows = self.pending.setdefault(key, [])
        rows.extend(zip(chunk.rows, vectors, strict=True))
        if len(rows) == chunk.shard_rows:
            del self.pending[key]
            yield chunk.lang, self.write(key, rows)

    def write(self, key, items) -> dict:
        lang, shard = key
        items = sorted(items, key=lambda item: item[0]["hash"])
        vectors = np.stack([vector for _, vector in items]).astype(self.dtype)
        ids = pa.Table.from_pylist([{c: row[c] for c in ID_COLUMNS} for row, _ in items], ID_SCHEMA)
        record = write_shard(lang_dir(self.out_dir, lang), shard, vectors, ids)
        unit = json.dumps({"lang": lang, "shard": shard, **record}).encode()  # keys in order
        write_bytes(unit_path(self.out_dir, lang, shard), unit)
        _count(f"embedded:{lang}", len(items))
        log.info("embed: %s shard %d written, %d sentences", lang, shard, len(items))
        return record

    def finish_bundle(self):
        if self.pending:  # a shard's rows always travel together: this is a bug, not input
            raise RuntimeError(
                f"shards left incomplete at the end of a bundle: {list(self.pending)}"
            )


def unit_path(out_dir: str, lang: str, shard: int) -> str:
    return FileSystems.join(out_dir, UNITS, f"{lang}-{shard:05d}.json")


def finished_shards(out_dir: str, shards: dict[str, int]) -> dict[tuple[str, int], dict]:
    """{(lang, shard): layout record} of the shards a killed run finished: recorded, with both
    files listed and the .npy of the recorded size (no shard is opened)."""
    pattern = FileSystems.join(out_dir, UNITS, "*.json")
    units = read_unit_records([m.path for m in FileSystems.match([pattern])[0].metadata_list])
    units = [u for u in units if u and u["lang"] in shards and u["shard"] < shards[u["lang"]]]
    if not units:
        return {}
    langs = sorted({unit["lang"] for unit in units})
    listings = FileSystems.match([FileSystems.join(lang_dir(out_dir, lang), "*") for lang in langs])
    sizes = {
        (lang, os.path.basename(m.path)): m.size_in_bytes
        for lang, listing in zip(langs, listings, strict=True)
        for m in listing.metadata_list
    }
    finished = {}
    for unit in units:
        lang, shard = unit.pop("lang"), unit.pop("shard")
        npy, parquet = shard_names(shard)
        if (lang, parquet) in sizes and sizes.get((lang, npy)) == unit.get("bytes"):
            finished[(lang, shard)] = unit
    return finished


@dataclass
class Chunk:
    """Rows of one shard that are encoded together; `shard_rows`: how many rows the shard has."""

    lang: str
    shard: int
    shard_rows: int
    rows: list[dict]

    @property
    def texts(self) -> list[str]:
        return [row["text"] for row in self.rows]


def _shard_chunks(keyed, chunk_size: int):
    """A shard's rows in chunks of `chunk_size`, cut from the rows sorted by length (then hash):
    each chunk holds sentences of similar length, and the chunks depend only on the shard's
    rows, not on the order a runner delivers them in."""
    (lang, shard), rows = keyed
    rows = sorted(rows, key=lambda row: (len(row["text"]), row["hash"]))
    for start in range(0, len(rows), chunk_size):
        yield Chunk(lang, shard, len(rows), rows[start : start + chunk_size])


class ReadSentences(beam.DoFn):
    """A sentences part's rows, each with the language its directory (`lang=XX`) names, read a
    row group at a time. A part that cannot be read stops the stage with a StageError naming
    it (Beam's Parquet source failed with pyarrow's traceback, which names no file)."""

    BATCH_ROWS = 10_000  # rows made into Python objects at a time

    def process(self, path: str):
        lang = lang_of(path)
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            parquet = _opened(path, lambda: pq.ParquetFile(stream))
            for group in range(parquet.num_row_groups):
                table = _opened(path, lambda g=group: parquet.read_row_group(g), group)
                for batch in table.to_batches(self.BATCH_ROWS):
                    for row in batch.to_pylist():
                        row["lang"] = lang
                        yield row


def _opened(path: str, read, group: int | None = None):
    """read(), or a StageError naming the part (and row group) it failed on."""
    try:
        return read()
    except (OSError, pa.ArrowException) as exc:
        where = path if group is None else f"{path}, row group {group}"
        raise StageError(
            f"{where}: unreadable ({' '.join(str(exc).split())}); "
            "extract again (ccmine extract, or ccmine run --force)"
        ) from exc


def _keep_nonempty(row) -> bool:
    if row["text"] and row["text"].strip():
        return True
    _count("dropped:empty")
    return False


def sentence_files(sentences_dir: str, lang: str) -> list[str]:
    pattern = FileSystems.join(sentences_dir, f"lang={lang}", "*.parquet")
    files = matching_paths(pattern)
    if not files:
        raise FileNotFoundError(
            f"no {lang} sentences in {sentences_dir}: the extract stage was not asked for {lang}"
        )
    return files


def count_rows(files: list[str]) -> int:
    total = 0
    for path in files:
        with FileSystems.open(path) as stream:
            total += pq.ParquetFile(stream).metadata.num_rows
    return total


def shard_counts(
    sentences_dir: str, content_ids: dict[str, str], rows_per_shard: int
) -> dict[str, int]:
    """Shards per language of `content_ids` (sentences per language / rows per shard, rounded
    up): the count of a language's sentences is in its content id, else it is read from its
    files' footers (a request or more per file on Cloud Storage). A StageError for a language
    the extract stage kept no sentences of, which would have no shards."""
    shards = {}
    for lang, sentences_id in content_ids.items():
        rows = content_rows(sentences_id)
        if rows is None:
            rows = count_rows(sentence_files(sentences_dir, lang))
        if not rows:
            raise StageError(f"no {lang} sentences in {sentences_dir}: the extract stage kept none")
        shards[lang] = math.ceil(rows / rows_per_shard)
    return shards


def _unfinished(keyed, finished) -> bool:
    return keyed[0] not in finished


def build_pipeline(
    pipeline,
    sentences_dir,
    out_dir,
    langs,
    handler,
    dtype,
    shards,
    finished=None,
    chunk_size=CHUNK_ROWS,
):
    """Rows of every language, keyed by (language, hash % shards), less the `finished` shards
    ({(lang, shard): layout record}), grouped, encoded chunk by chunk and written shard by
    shard; then each language's layout file, from the records of all its shards."""
    finished = finished or {}
    patterns = [FileSystems.join(sentences_dir, f"lang={lang}", "*.parquet") for lang in langs]
    written = (
        pipeline
        | "SentencePatterns" >> beam.Create(patterns)
        | "SentenceFiles" >> beam.FlatMap(matching_paths)
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadSentences" >> beam.ParDo(ReadSentences())
        | "DropEmpty" >> beam.Filter(_keep_nonempty)
        | "KeyByShard"
        >> beam.Map(lambda row: ((row["lang"], row["hash"] % shards[row["lang"]]), row))
        | "SkipFinishedShards" >> beam.Filter(_unfinished, frozenset(finished))
        | "GroupShards" >> beam.GroupByKey()
        | "ShardChunks" >> beam.FlatMap(_shard_chunks, chunk_size)
        | "Encode" >> RunInference(handler)
        | "WriteShards" >> beam.ParDo(WriteShards(out_dir, dtype))
    )
    earlier = [(lang, record) for (lang, _), record in sorted(finished.items())]
    _ = (
        (written, pipeline | "FinishedShards" >> beam.Create(earlier))
        | "AllShards" >> beam.Flatten()
        | "GroupByLanguage" >> beam.GroupByKey()
        | "WriteLayouts" >> beam.Map(_write_language_layout, out_dir)
    )


def _write_language_layout(grouped, out_dir: str) -> None:
    lang, records = grouped
    write_layout(lang_dir(out_dir, lang), records)


def run(
    run_dir: str,
    encoder: str,
    langs: list[str],
    device: str = "auto",
    batch_size: int = 64,
    chunk_size: int = CHUNK_ROWS,
    dtype: str = "float16",
    threads: int = 0,
    rows_per_shard: int = 100_000,
    beam_args: list[str] | None = None,
    reuse: bool = True,
) -> dict:
    """Run the embed stage and commit RUN_DIR/embeddings; returns its stats. With `reuse`, the
    languages whose embeddings the current output holds for the same sentences and encoder
    are taken over, not encoded again (a run that adds a language encodes only that one)."""
    from mining.encoders.loading import encoder_device
    from pipelines.beam_args import runs_here

    sentences_dir = require_complete(run_dir, "sentences")
    device = encoder_device(encoder, device, here=runs_here(beam_args or []))
    config = stage_config(run_dir, encoder, langs, dtype)  # resolves the encoder: fails early
    reused = reusable_langs(run_dir, STAGE, config) if reuse else []
    reused_rows = output_stats(run_dir, STAGE, "embedded", reused)
    if reused:
        log.info("embed: %s unchanged, their embeddings reused", ", ".join(reused))
    todo = [lang for lang in langs if lang not in reused]
    handler = SentenceEncoderHandler(encoder, device, batch_size, threads)
    shards = shard_counts(
        sentences_dir, {lang: config["langs"][lang] for lang in todo}, rows_per_shard
    )
    writer = StageWriter(
        run_dir,
        STAGE,
        resume={**config, "shards": shards},
        keep=[f"lang={lang}" for lang in reused],
    )
    finished = finished_shards(writer.path(), shards) if writer.resumed else {}
    if finished:
        log.info(
            "embed: resuming, %d shards of %d already finished", len(finished), sum(shards.values())
        )
    stats = {}
    if todo:
        stats = run_pipeline(
            writer,
            lambda p: build_pipeline(
                p,
                sentences_dir,
                writer.path(),
                todo,
                handler,
                dtype,
                shards,
                finished,
                chunk_size,
            ),
            beam_args,
            NAMESPACE,
        )
    encoded = dict(stats.get("embedded", {}))
    for (lang, _shard), record in finished.items():
        embedded = stats.setdefault("embedded", {})
        embedded[lang] = embedded.get(lang, 0) + record["rows"]
    if finished:
        rows_reused = sum(record["rows"] for record in finished.values())
        stats["resumed"] = {"shards_reused": len(finished), "rows_reused": rows_reused}
        stats["encoded_now"] = encoded
    if reused:
        stats.setdefault("embedded", {}).update(reused_rows)
        stats["reused"] = reused_rows
    outputs = {
        lang: content_id(sentences, encoder, config["encoder_dir"], dtype)
        for lang, sentences in config["langs"].items()
    }
    writer.commit({**stats, "encoder": encoder, "dtype": dtype}, config, outputs)
    return stats


def stage_config(run_dir: str, encoder: str, langs: list[str], dtype: str) -> dict:
    """What makes two embed runs equal: the encoder, the dtype, and per language the sentences
    read (their content id)."""
    from mining.encoders.loading import resolve_encoder

    return {
        "encoder": encoder,
        "encoder_dir": resolve_encoder(encoder),
        "langs": output_ids(run_dir, "sentences", langs),
        "dtype": dtype,
    }

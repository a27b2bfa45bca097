"""Embed stage: sentences to embedding shards through Beam RunInference."""

from __future__ import annotations

import math
from collections import Counter

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

from mining.embedding_store import ID_SCHEMA, lang_dir, write_shard
from pipelines.stage_dir import StageWriter, require_complete, run_pipeline, upstream_id

NAMESPACE = "embed"
STAGE = "embeddings"
ID_COLUMNS = [field.name for field in ID_SCHEMA]


def _count(name: str, n: int = 1) -> None:
    if n:
        Metrics.counter(NAMESPACE, name).inc(n)


class SentenceEncoderHandler(ModelHandler):
    """RunInference handler: one encoder per worker process (one per machine on GPU).

    RunInference hands over chunks of up to `chunk_size` rows; the encoder sorts each chunk by
    length and runs it in batches of `batch_size`, so batches hold sentences of similar length.
    """

    def __init__(self, encoder: str, device: str, batch_size: int, chunk_size: int, threads: int):
        super().__init__(
            min_batch_size=min(batch_size, chunk_size),
            max_batch_size=chunk_size,
            large_model=device.startswith("cuda"),
        )
        self.encoder = encoder
        self.device = device
        self.batch_size = batch_size
        self.threads = threads

    def load_model(self):
        import torch

        from mining.encoders import load_encoder

        if self.threads:
            torch.set_num_threads(self.threads)
        return load_encoder(self.encoder, self.device)

    def run_inference(self, batch, model, inference_args=None):
        before = Counter(model.stats)
        vectors = model.encode([row["text"] for row in batch], self.batch_size)
        for key, value in (model.stats - before).items():
            _count(key, value)
        return list(zip(batch, vectors, strict=True))

    def get_metrics_namespace(self) -> str:
        return "ccmine_embed_inference"


class WriteShard(beam.DoFn):
    """Writes one shard: rows ordered by hash, vectors in the output dtype."""

    def __init__(self, out_dir: str, dtype: str):
        self.out_dir = out_dir
        self.dtype = dtype

    def process(self, keyed):
        (lang, shard), items = keyed
        items = sorted(items, key=lambda item: item[0]["hash"])
        vectors = np.stack([vector for _, vector in items]).astype(self.dtype)
        ids = pa.Table.from_pylist([{c: row[c] for c in ID_COLUMNS} for row, _ in items], ID_SCHEMA)
        write_shard(lang_dir(self.out_dir, lang), shard, vectors, ids)
        _count(f"embedded:{lang}", len(items))
        yield lang, shard, len(items)


def _keep_nonempty(row) -> bool:
    if row["text"] and row["text"].strip():
        return True
    _count("dropped:empty")
    return False


def sentence_files(sentences_dir: str, lang: str) -> list[str]:
    pattern = FileSystems.join(sentences_dir, f"lang={lang}", "*.parquet")
    files = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    if not files:
        raise FileNotFoundError(f"no sentences for language {lang!r} in {sentences_dir}")
    return files


def count_rows(files: list[str]) -> int:
    total = 0
    for path in files:
        with FileSystems.open(path) as stream:
            total += pq.ParquetFile(stream).metadata.num_rows
    return total


def build_pipeline(pipeline, sentences_dir, out_dir, langs, handler, dtype, rows_per_shard):
    tagged = []
    shards = {}
    for lang in langs:
        files = sentence_files(sentences_dir, lang)
        shards[lang] = max(1, math.ceil(count_rows(files) / rows_per_shard))
        tagged.append(
            pipeline
            | f"Read_{lang}"
            >> beam.io.ReadFromParquet(FileSystems.join(sentences_dir, f"lang={lang}", "*.parquet"))
            | f"Tag_{lang}" >> beam.Map(lambda row, lang=lang: {**row, "lang": lang})
        )
    _ = (
        tagged
        | "AllLanguages" >> beam.Flatten()
        | "DropEmpty" >> beam.Filter(_keep_nonempty)
        | "Encode" >> RunInference(handler)
        | "KeyByShard"
        >> beam.Map(
            lambda item: ((item[0]["lang"], item[0]["hash"] % shards[item[0]["lang"]]), item)
        )
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(out_dir, dtype))
    )


def run(
    run_dir: str,
    encoder: str,
    langs: list[str],
    device: str = "auto",
    batch_size: int = 64,
    chunk_size: int = 1024,
    dtype: str = "float16",
    threads: int = 0,
    rows_per_shard: int = 100_000,
    beam_args: list[str] | None = None,
) -> dict:
    """Run the embed stage and commit RUN_DIR/embeddings; returns its stats."""
    from mining.encoders.loading import pick_device

    sentences_dir = require_complete(run_dir, "sentences")
    device = pick_device(device)
    config = stage_config(run_dir, encoder, langs, dtype)  # resolves the encoder: fails early
    handler = SentenceEncoderHandler(encoder, device, batch_size, chunk_size, threads)
    writer = StageWriter(run_dir, STAGE)
    stats = run_pipeline(
        writer,
        lambda p: build_pipeline(
            p, sentences_dir, writer.path(), langs, handler, dtype, rows_per_shard
        ),
        beam_args,
        NAMESPACE,
    )
    writer.commit({**stats, "encoder": encoder, "dtype": dtype}, config)
    return stats


def stage_config(run_dir: str, encoder: str, langs: list[str], dtype: str) -> dict:
    """What makes two embed runs equal: the sentences they read, the encoder, languages, dtype."""
    from mining.encoders.loading import resolve_encoder

    return {
        "sentences": upstream_id(run_dir, "sentences"),
        "encoder": encoder,
        "encoder_dir": resolve_encoder(encoder),
        "langs": list(langs),
        "dtype": dtype,
    }

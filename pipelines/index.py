"""Index stage: FAISS index shards per language, trained and built by Beam workers.

A language's rows are cut into index shards of at most `shard_size` rows (indexes/shards.py).
For IVF-PQ, workers draw a bounded training sample from the embedding shards (rows in
proportion to each shard's size, seeded by shard), one worker trains the quantizer and codebooks
once per language and writes the trained empty index, and workers then add each index shard's
rows to a copy of it and write the shard. The driver reads only .npy headers and the shards'
small records.
"""

from __future__ import annotations

import inspect
import logging

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from indexes import faiss_index, shards
from mining.embedding_store import ShardLayout, read_vectors, shard_layout
from pipelines.stage_dir import (
    StageWriter,
    content_id,
    output_ids,
    output_stats,
    read_marker,
    require_complete,
    reusable_langs,
    run_pipeline,
)

STAGE = "indexes"
NAMESPACE = "index"
log = logging.getLogger("ccmine")


def sample_counts(layout: ShardLayout, size: int) -> list[int]:
    """Rows to draw from each embedding shard: `size` in all, in proportion to shard sizes."""
    rows = np.diff(layout.starts)
    counts = np.floor(size * rows / max(layout.rows, 1)).astype(int)
    for shard in np.argsort(-(rows - counts), kind="stable")[: size - counts.sum()]:
        counts[shard] += 1  # the remainder to the shards with most rows left
    return np.minimum(counts, rows).tolist()


class SampleRows(beam.DoFn):
    """Draws `count` rows of one embedding shard (seeded by the shard, so reruns agree)."""

    def process(self, item):
        number, npy, count = item
        vectors = read_vectors(npy)
        rows = np.random.default_rng([0, number]).choice(len(vectors), count, replace=False)
        yield np.asarray(vectors[np.sort(rows)], dtype=np.float32)


def train_and_write(samples, spec: faiss_index.IndexSpec, path: str) -> str:
    """Train the empty index on the gathered sample (one worker, once per language)."""
    index = faiss_index.train_index(np.concatenate(list(samples)), spec)
    faiss_index.write_index(index, path)
    return path


class BuildIndexShard(beam.DoFn):
    """Adds rows [start, stop) of a language to an empty (trained) index and writes the shard
    with its record."""

    def __init__(self, layout: ShardLayout, spec: faiss_index.IndexSpec, index_dir: str, record):
        self.layout = layout
        self.spec = spec
        self.index_dir = index_dir
        self.record = record  # what every shard of the language records: encoder, embeddings...

    def process(self, shard, trained_path=None):
        number, start, stop = shard
        index = (
            faiss_index.load_index(trained_path)
            if trained_path
            else faiss_index.new_index(self.spec)
        )
        faiss_index.add_vectors(index, self.layout.read_rows(start, stop))
        path = shards.shard_path(self.index_dir, self.layout.lang, number)
        size = faiss_index.write_index(index, path)
        shards.write_json(
            shards.shard_record_path(path),
            {**self.record, "number": number, "start": start, "stop": stop, "bytes": size},
        )
        Metrics.counter(NAMESPACE, f"indexed:{self.layout.lang}").inc(stop - start)
        yield number


def build_language_pipeline(pipeline, layout, spec, index_dir, record, shard_size) -> None:
    lang = layout.lang
    trained = None
    if spec.index_type != "flat":
        counts = sample_counts(layout, faiss_index.sample_size(spec, layout.rows))
        items = [(n, layout.npys[n], c) for n, c in enumerate(counts) if c]
        trained = beam.pvalue.AsSingleton(
            pipeline
            | f"SampleShards_{lang}" >> beam.Create(items)
            | f"SpreadSamples_{lang}" >> beam.Reshuffle()
            | f"Sample_{lang}" >> beam.ParDo(SampleRows())
            | f"GatherSample_{lang}" >> beam.combiners.ToList()
            | f"Train_{lang}"
            >> beam.Map(
                train_and_write, spec, FileSystems.join(index_dir, lang, "trained-empty.faiss")
            )
        )
    _ = (
        pipeline
        | f"IndexShards_{lang}" >> beam.Create(shards.plan_shards(layout.rows, shard_size))
        | f"SpreadShards_{lang}" >> beam.Reshuffle()
        | f"Build_{lang}"
        >> beam.ParDo(
            BuildIndexShard(layout, spec, index_dir, record), *([trained] * bool(trained))
        )
    )


def language_meta(index_dir, layout, spec, record, shard_size) -> dict:
    """LANG.json from the shards' records (read back: what the workers wrote)."""
    listed = []
    for number, start, stop in shards.plan_shards(layout.rows, shard_size):
        path = shards.shard_path(index_dir, layout.lang, number)
        written = shards.read_json(shards.shard_record_path(path))
        listed.append(
            {
                "number": number,
                "start": start,
                "stop": stop,
                "path": FileSystems.join(layout.lang, f"shard-{number:05d}.faiss"),
                "bytes": written["bytes"],
            }
        )
    return {
        **record,
        "lang": layout.lang,
        "count": layout.rows,
        "spec": spec.as_dict(),
        "faiss_version": faiss_index.faiss.__version__,
        "shard_size": shard_size,
        "shards": listed,
    }


def run(
    run_dir: str,
    langs: list[str],
    index_args: dict | None = None,
    beam_args: list[str] | None = None,
    reuse: bool = True,
) -> dict:
    """Build RUN_DIR/indexes/LANG.json and LANG/shard-*.faiss for each language; returns stats.
    With `reuse`, the languages whose index the current output holds, built the same way from
    the same embeddings, are taken over, not built again."""
    emb_dir = require_complete(run_dir, "embeddings")
    config = stage_config(run_dir, langs, index_args)
    index_args = dict(config["index_args"])
    shard_size = index_args.pop("shard_size")
    encoder = read_marker(run_dir, "embeddings")["config"].get("encoder")
    reused = reusable_langs(run_dir, STAGE, config) if reuse else []
    stats: dict = {"indexes": output_stats(run_dir, STAGE, "indexes", reused)}
    if reused:
        log.info("index: %s unchanged, their indexes reused", ", ".join(reused))
        stats["reused"] = {lang: stats["indexes"][lang]["count"] for lang in reused}
    gpu = faiss_index.gpu_available()
    plans = []
    for lang in (lang for lang in langs if lang not in reused):
        layout = shard_layout(emb_dir, lang)
        spec = faiss_index.choose_spec(
            layout.rows, layout.dim, **index_args, shard_size=shard_size, gpu=gpu
        )
        record = {
            "encoder": encoder,
            "embeddings": config["langs"][lang],
            "dim": layout.dim,
            "factory": spec.factory(),
        }
        plans.append((layout, spec, record))
    keep = [path for lang in reused for path in (lang, f"{lang}.json")]
    writer = StageWriter(run_dir, STAGE, keep=keep)

    def build(pipeline):
        for layout, spec, record in plans:
            build_language_pipeline(pipeline, layout, spec, writer.path(), record, shard_size)

    if plans:
        stats.update(run_pipeline(writer, build, beam_args, NAMESPACE))
    try:
        for layout, spec, record in plans:
            meta = language_meta(writer.path(), layout, spec, record, shard_size)
            shards.write_json(shards.meta_path(writer.path(), layout.lang), meta)
            trained = FileSystems.join(writer.path(), layout.lang, "trained-empty.faiss")
            if FileSystems.exists(trained):
                FileSystems.delete([trained])
            stats["indexes"][layout.lang] = {
                key: meta[key] for key in ("count", "dim", "factory", "encoder", "shard_size")
            } | {"shards": len(meta["shards"])}
    except BaseException:
        writer.abandon()
        raise
    outputs = {
        lang: content_id(embeddings, config["index_args"])
        for lang, embeddings in config["langs"].items()
    }
    writer.commit(stats, config, outputs)
    return stats


def stage_config(run_dir: str, langs: list[str], index_args: dict | None) -> dict:
    """What makes two index runs equal: the options not left at `choose_spec`'s defaults (so
    that `ccmine index` with none set and `ccmine run` agree), the shard size, always, and per
    language the embeddings read (their content id)."""
    unset = inspect.signature(faiss_index.choose_spec).parameters
    index_args = {
        name: value
        for name, value in (index_args or {}).items()
        if value is not None and (name not in unset or value != unset[name].default)
    }
    index_args["shard_size"] = index_args.get("shard_size") or shards.SHARD_SIZE
    return {"langs": output_ids(run_dir, "embeddings", langs), "index_args": index_args}

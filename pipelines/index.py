"""Index stage: FAISS index shards per language, trained and built by Beam workers.

A language's rows are cut into index shards of at most `shard_size` rows (indexes/shards.py).
For IVF-PQ, workers draw a bounded training sample from the embedding shards (from every one,
or from shards spread over the language where the embed stage cut them by hash; rows in
proportion to each shard's size, seeded by shard), one worker trains the quantizer and codebooks
once per language and writes the trained empty index, and workers then add each index shard's
rows to a copy of it and write the shard. The driver reads only the embedding shards' listing
and layout file, and the index shards' listing.
"""

from __future__ import annotations

import inspect
import logging
import time

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from indexes import faiss_index, shards
from mining.embedding_store import ShardLayout, read_vectors, shard_layout
from mining.json_files import write_json
from pipelines.stage_dir import (
    StageError,
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
# The embed stage cuts a language's shards by sentence hash, so each of its shards is a random
# subset of the language; the IVF training sample is drawn from shards of theirs spread evenly
# over the language that hold SAMPLE_SPREAD times its rows: tens of shards where every one
# would be 10,000 at a billion rows. Embeddings dropped in by hand may be in any order (by
# site, say), and give rows from every shard (benchmarks/bench_ivf_sample.py: on shards sorted
# by cluster, a spread sample lost 0.11 of recall@4; on hash-cut shards none).
SAMPLE_SPREAD = 8
log = logging.getLogger("ccmine")


def sample_counts(layout: ShardLayout, size: int, spread: bool) -> list[int]:
    """Rows to draw from each embedding shard: `size` in all, in proportion to shard sizes,
    from every shard or, with `spread` (hash-cut shards), from the `sampled_shards` only."""
    rows = np.diff(layout.starts)
    picked = sampled_shards(rows, size) if spread else np.arange(len(rows))
    # Shard i's share ends at size * (rows of shards 0..i) // rows in all: the shares sum to
    # `size`, none exceeds its shard, and the roundings are spread over the shards.
    ends = size * np.cumsum(rows[picked]) // max(rows[picked].sum(), 1)
    counts = np.zeros(len(rows), int)
    counts[picked] = np.diff(ends, prepend=0)
    return counts.tolist()


def sampled_shards(rows: np.ndarray, size: int) -> np.ndarray:
    """The embedding shards (of `rows` rows each) a training sample of `size` rows is drawn
    from: all of them when they hold at most SAMPLE_SPREAD * size rows, else the fewest shards
    spread evenly over the language that hold that many."""
    wanted = SAMPLE_SPREAD * size
    if rows.sum() <= wanted:
        return np.arange(len(rows))
    count = max(1, wanted * len(rows) // rows.sum())
    while rows[_evenly(count, len(rows))].sum() < wanted:  # at the latest, all shards hold it
        count += 1
    return _evenly(count, len(rows))


def _evenly(count: int, shards: int) -> np.ndarray:
    """`count` of `shards` shard numbers, evenly spaced (the middle of each stretch)."""
    return ((np.arange(count) + 0.5) * shards / count).astype(int)


def training_samples(plans: dict, hash_cut: frozenset) -> list[tuple[str, int, str, int]]:
    """(language, shard, .npy, rows to draw) of the IVF-PQ languages' training samples;
    `hash_cut`: the languages whose embedding shards the embed stage cut by sentence hash."""
    return [
        (lang, number, layout.npys[number], count)
        for lang, (layout, spec, _) in plans.items()
        if spec.index_type != "flat"
        for number, count in enumerate(
            sample_counts(layout, faiss_index.sample_size(spec, layout.rows), lang in hash_cut)
        )
        if count
    ]


def drawn_rows(vectors: np.ndarray, number: int, count: int) -> np.ndarray:
    """`count` rows of embedding shard `number`, in float32 (seeded by the shard, so reruns
    agree)."""
    rows = np.random.default_rng([0, number]).choice(len(vectors), count, replace=False)
    return np.asarray(vectors[np.sort(rows)], dtype=np.float32)


class SampleRows(beam.DoFn):
    """Draws `count` rows of one embedding shard (`drawn_rows`)."""

    def process(self, item):
        lang, number, npy, count = item
        yield lang, (number, drawn_rows(read_vectors(npy), number, count))


def train_and_write(gathered, plans: dict, index_dir: str) -> tuple[str, str]:
    """Train a language's empty index on its gathered sample, in shard order (one worker, once
    per language); (language, path of the trained index)."""
    lang, samples = gathered
    _, spec, _ = plans[lang]
    ordered = [vectors for _, vectors in sorted(samples, key=lambda sample: sample[0])]
    started = time.monotonic()
    log.info("index %s: training on %d vectors", lang, sum(len(v) for v in ordered))
    index = faiss_index.train_index(np.concatenate(ordered), spec)
    path = trained_path(index_dir, lang)
    faiss_index.write_index(index, path)
    log.info("index %s: trained in %.1f s", lang, time.monotonic() - started)
    return lang, path


def trained_path(index_dir: str, lang: str) -> str:
    """Where a language's trained empty index waits for the shards (deleted once they are
    built)."""
    return FileSystems.join(index_dir, lang, "trained-empty.faiss")


class BuildIndexShard(beam.DoFn):
    """Adds rows [start, stop) of a language to an empty (trained) index and writes the shard
    with its record. `plans`: {language: (layout, spec, record)}, the record being what every
    shard of the language records (encoder, embeddings...)."""

    def __init__(self, plans: dict, index_dir: str):
        self.plans = plans
        self.index_dir = index_dir

    def process(self, shard, trained: dict):
        lang, number, start, stop = shard
        started = time.monotonic()
        layout, spec, record = self.plans[lang]
        index = (
            faiss_index.new_index(spec)
            if spec.index_type == "flat"
            else faiss_index.load_index(trained[lang])
        )
        faiss_index.add_vectors(index, layout.read_rows(start, stop))
        path = shards.shard_path(self.index_dir, lang, number)
        size = faiss_index.write_index(index, path)
        write_json(
            shards.shard_record_path(path),
            {**record, "number": number, "start": start, "stop": stop, "bytes": size},
        )
        Metrics.counter(NAMESPACE, f"indexed:{lang}").inc(stop - start)
        log.info(
            "index %s: shard %d built, %d vectors in %.1f s",
            lang,
            number,
            stop - start,
            time.monotonic() - started,
        )
        yield lang, number


def build_pipeline(pipeline, plans: dict, samples: list, index_dir: str, shard_size: int) -> None:
    """Every language's index shards in one set of steps (as many for 100 languages as for
    one). `plans`: {language: (layout, spec, record)}; `samples`: `training_samples`."""
    trained = beam.pvalue.AsDict(
        pipeline
        | "SampleShards" >> beam.Create(samples)
        | "SpreadSamples" >> beam.Reshuffle()
        | "Sample" >> beam.ParDo(SampleRows())
        | "GatherSamples" >> beam.GroupByKey()
        | "Train" >> beam.Map(train_and_write, plans, index_dir)
    )
    items = [
        (lang, *shard)
        for lang, (layout, _, _) in plans.items()
        for shard in shards.plan_shards(layout.rows, shard_size)
    ]
    _ = (
        pipeline
        | "IndexShards" >> beam.Create(items)
        | "SpreadShards" >> beam.Reshuffle()
        | "Build" >> beam.ParDo(BuildIndexShard(plans, index_dir), trained)
    )


def language_meta(index_dir, layout, spec, record, shard_size) -> dict:
    """LANG.json from the listing of the shards the workers wrote, each with its record."""
    sizes = shards.listed_sizes(FileSystems.join(index_dir, layout.lang))
    listed = []
    for number, start, stop in shards.plan_shards(layout.rows, shard_size):
        path = shards.shard_path(index_dir, layout.lang, number)
        size = shards.listed_shard_size(sizes, path, "missing after the index job")
        listed.append(
            {
                "number": number,
                "start": start,
                "stop": stop,
                "path": FileSystems.join(layout.lang, f"shard-{number:05d}.faiss"),
                "bytes": size,
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
    embedded = read_marker(run_dir, "embeddings")["config"]
    encoder = embedded.get("encoder")
    hash_cut = frozenset(embedded.get("langs", {}))  # embedded by the embed stage
    reused = reusable_langs(run_dir, STAGE, config) if reuse else []
    stats: dict = {"indexes": output_stats(run_dir, STAGE, "indexes", reused)}
    if reused:
        log.info("index: %s unchanged, their indexes reused", ", ".join(reused))
        stats["reused"] = {lang: stats["indexes"][lang]["count"] for lang in reused}
    gpu = faiss_index.gpu_available()
    plans = {}
    for lang in (lang for lang in langs if lang not in reused):
        layout = shard_layout(emb_dir, lang)
        try:
            spec = faiss_index.choose_spec(
                layout.rows, layout.dim, **index_args, shard_size=shard_size, gpu=gpu
            )
        except ValueError as exc:
            raise StageError(f"index {lang}: {exc}") from None
        record = {
            "encoder": encoder,
            "embeddings": config["langs"][lang],
            "dim": layout.dim,
            "factory": spec.factory(),
        }
        plans[lang] = (layout, spec, record)
        _warn_unused(lang, layout.rows, spec, index_args)
    samples = training_samples(plans, hash_cut)
    drawn: dict = {}
    for lang, _, _, count in samples:
        rows, from_shards = drawn.get(lang, (0, 0))
        drawn[lang] = (rows + count, from_shards + 1)
    keep = [path for lang in reused for path in (lang, f"{lang}.json")]
    writer = StageWriter(run_dir, STAGE, keep=keep)

    if plans:
        stats.update(
            run_pipeline(
                writer,
                lambda p: build_pipeline(p, plans, samples, writer.path(), shard_size),
                beam_args,
                NAMESPACE,
            )
        )
    try:
        for layout, spec, record in plans.values():
            meta = language_meta(writer.path(), layout, spec, record, shard_size)
            write_json(shards.meta_path(writer.path(), layout.lang), meta)
            trained = trained_path(writer.path(), layout.lang)
            if FileSystems.exists(trained):
                FileSystems.delete([trained])
            stats["indexes"][layout.lang] = {
                key: meta[key] for key in ("count", "dim", "factory", "encoder", "shard_size")
            } | {"shards": len(meta["shards"])}
            if layout.lang in drawn:
                rows, from_shards = drawn[layout.lang]
                stats["indexes"][layout.lang]["training_sample"] = {
                    "rows": rows,
                    "embedding_shards": from_shards,
                }
    except BaseException:
        writer.abandon()
        raise
    outputs = {
        lang: content_id(embeddings, config["index_args"])
        for lang, embeddings in config["langs"].items()
    }
    writer.commit(stats, config, outputs)
    return stats


def _warn_unused(lang: str, rows: int, spec, index_args: dict) -> None:
    """Name the IVF-PQ options set for a language that auto gave an exact index."""
    unused = [name for name in index_args if name != "index_type"]
    if spec.index_type == "flat" and unused:
        options = ", ".join("--" + name.replace("_", "-") for name in unused)
        log.warning(
            "index %s: %s vectors get an exact (flat) index, so %s (IVF-PQ options) are not "
            "used; auto builds IVF-PQ from %s vectors, --index-type ivfpq always",
            lang,
            f"{rows:,}",
            options,
            f"{faiss_index.FLAT_MAX:,}",
        )


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

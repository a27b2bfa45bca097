"""Index stage: one FAISS index per language from the embedding shards.

The driver picks the index type from the corpus size and trains IVF-PQ once on a sample; Beam
workers add the shards in parallel, each writing a partial index; the driver merges them.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from indexes import faiss_index
from mining.embedding_store import (
    list_shards,
    read_vectors,
    shard_offsets,
    shard_rows,
    shard_shape,
)
from pipelines.stage_dir import StageWriter, read_marker, require_complete, upstream_id

STAGE = "indexes"


class AddShard(beam.DoFn):
    """Adds one shard to a copy of the trained, empty index and writes the partial index."""

    def __init__(self, empty_index_path: str, parts_dir: str):
        self.empty_index_path = empty_index_path
        self.parts_dir = parts_dir

    def process(self, shard):
        number, npy, first_id = shard
        index = faiss_index.load_index(self.empty_index_path)
        faiss_index.add_vectors(index, read_vectors(npy), first_id)
        path = FileSystems.join(self.parts_dir, f"part-{number:05d}.faiss")
        faiss_index.write_index(index, path)
        yield number, path


def build_add_pipeline(pipeline, lang: str, offsets, empty_path: str, work: str) -> None:
    _ = (
        pipeline
        | f"Shards_{lang}" >> beam.Create(offsets)
        | f"Spread_{lang}" >> beam.Reshuffle()
        | f"Add_{lang}" >> beam.ParDo(AddShard(empty_path, work))
    )


def _training_vectors(shards: list[tuple[str, str]], spec, limit: int) -> np.ndarray:
    """Up to `limit` rows, drawn evenly from every shard."""
    per_shard = max(1, limit // len(shards))
    rng = np.random.default_rng(0)
    parts = []
    for npy, _ in shards:
        vectors = read_vectors(npy)
        rows = rng.choice(len(vectors), size=min(per_shard, len(vectors)), replace=False)
        parts.append(vectors[np.sort(rows)].astype(np.float32))
    return np.concatenate(parts)


def build_language(emb_dir, lang, out_dir, options, index_args, encoder) -> dict:
    shards = list_shards(emb_dir, lang)
    if not shards:
        raise FileNotFoundError(f"no embedding shards for {lang} in {emb_dir}")
    offsets = shard_offsets(shards)
    dim = shard_shape(shards[0][0])[1]
    count = offsets[-1][2] + shard_rows(shards[-1][1])
    spec = faiss_index.choose_spec(count, dim, **index_args, gpu=faiss_index.gpu_available())
    sample = (
        _training_vectors(shards, spec, faiss_index.TRAIN_POINTS_PER_LIST * spec.nlist)
        if spec.index_type == "ivfpq"
        else None
    )
    empty = (
        faiss_index.train_index(sample, spec) if sample is not None else faiss_index.new_index(spec)
    )
    work = FileSystems.join(out_dir, f"_parts-{lang}")
    empty_path = FileSystems.join(work, "empty.faiss")
    faiss_index.write_index(empty, empty_path)
    with beam.Pipeline(options=options) as pipeline:
        build_add_pipeline(pipeline, lang, offsets, empty_path, work)
    parts = [
        faiss_index.load_index(FileSystems.join(work, f"part-{n:05d}.faiss")) for n, _, _ in offsets
    ]
    merged = faiss_index.merge_indexes(parts)
    FileSystems.delete([work])
    if merged.ntotal != count:
        raise RuntimeError(f"{lang}: merged index holds {merged.ntotal} vectors, expected {count}")
    meta = faiss_index.index_meta(spec, count, encoder)
    faiss_index.write_index(merged, FileSystems.join(out_dir, f"{lang}.faiss"), meta)
    return meta


def run(
    run_dir: str,
    langs: list[str],
    index_args: dict | None = None,
    beam_args: list[str] | None = None,
) -> dict:
    """Build RUN_DIR/indexes/LANG.faiss (+ LANG.json) for each language; returns stats."""
    emb_dir = require_complete(run_dir, "embeddings")
    encoder = read_marker(run_dir, "embeddings")["config"].get("encoder")
    writer = StageWriter(run_dir, STAGE)
    options = PipelineOptions(beam_args or [])
    stats: dict = {"indexes": {}}
    try:
        for lang in langs:
            stats["indexes"][lang] = build_language(
                emb_dir, lang, writer.path(), options, index_args or {}, encoder
            )
    except BaseException:
        writer.abandon()
        raise
    writer.commit(stats, stage_config(run_dir, langs, index_args))
    return stats


def stage_config(run_dir: str, langs: list[str], index_args: dict | None) -> dict:
    return {
        "embeddings": upstream_id(run_dir, "embeddings"),
        "langs": list(langs),
        "index_args": index_args or {},
    }

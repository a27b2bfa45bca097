"""Mine stage: kNN in both directions, margin scores, thresholds, Parquet bitext.

Query shards are searched in parallel by Beam workers, each of which loads the other language's
whole index once (so margins do not depend on sharding) and re-scores the candidates with the
exact embeddings. Candidates are joined by key (the target's shard) with the target side's
neighbour means, scored, and reduced to each sentence's best candidate in Beam; the driver then
combines both directions by the retrieval mode (the greedy one-to-one `max` is sequential).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from indexes import faiss_index
from mining.embedding_store import (
    list_shards,
    load_ids,
    load_vectors,
    read_vectors,
    shard_offsets,
)
from mining.margin import Pairs, combine, margin
from mining.text_normalize import normalize_text
from pipelines.stage_dir import StageWriter, read_marker, require_complete, upstream_id

STAGE = "bitext"
BITEXT_SCHEMA = pa.schema(
    [
        ("src_lang", pa.string()),
        ("tgt_lang", pa.string()),
        ("src_text", pa.string()),
        ("tgt_text", pa.string()),
        ("score", pa.float32()),
        ("cosine", pa.float32()),
        ("src_url", pa.string()),
        ("tgt_url", pa.string()),
        ("src_hash", pa.int64()),
        ("tgt_hash", pa.int64()),
    ]
)
ROWS_PER_PART = 1_000_000


class SearchShard(beam.DoFn):
    """Searches one query shard against a whole index (loaded once per worker).

    Emits the shard's neighbour means, keyed by (query language, shard), on the `means` output,
    and its candidates keyed by the (target language, shard) that holds each neighbour, so that
    the join with the target side's means is by key.
    """

    def __init__(
        self,
        index_path: str,
        target_emb_dir: str,
        target_lang: str,
        target_starts: list[int],
        k: int,
        candidates: int,
    ):
        self.index_path = index_path
        self.target_emb_dir = target_emb_dir
        self.target_lang = target_lang
        self.target_starts = target_starts
        self.k = k
        self.candidates = candidates

    def setup(self):
        self.index, meta = faiss_index.read_index(self.index_path)
        self.rerank = None
        if meta["spec"]["index_type"] != "flat":
            self.rerank = load_vectors(self.target_emb_dir, self.target_lang, np.float16)

    def process(self, shard):
        query_lang, number, npy, offset = shard
        sims, ids = faiss_index.search(
            self.index, read_vectors(npy), self.k, self.rerank, self.candidates
        )
        means = sims.mean(axis=1)
        yield beam.pvalue.TaggedOutput("means", ((query_lang, number), (offset, means)))
        rows, cols = np.nonzero(ids >= 0)  # IVF may find fewer than k
        target_shard = np.searchsorted(self.target_starts, ids[rows, cols], side="right") - 1
        for target in np.unique(target_shard):
            sel = target_shard == target
            r, c = rows[sel], cols[sel]
            candidates = CandidateBlock(query_lang, number, offset + r, c, ids[r, c], sims[r, c])
            yield (self.target_lang, int(target)), (candidates, means[r])


@dataclass
class CandidateBlock:
    """Candidates of one query shard: query row ids, neighbour rank, target row ids, cosine."""

    query_lang: str
    query_shard: int
    query: np.ndarray
    rank: np.ndarray
    target: np.ndarray
    cos: np.ndarray


class ScoreCandidates(beam.DoFn):
    """The keyed join: candidates that point into one target shard meet that shard's neighbour
    means and get their margin scores; re-keyed by the query shard they came from."""

    def __init__(self, margin_kind: str):
        self.margin_kind = margin_kind

    def process(self, joined):
        _key, grouped = joined
        ((offset, target_means),) = grouped["means"]  # every target shard was a query shard
        for block, query_means in grouped["candidates"]:
            scores = margin(
                block.cos, query_means, target_means[block.target - offset], self.margin_kind
            )
            yield (block.query_lang, block.query_shard), (block, scores)


class BestPerQuery(beam.DoFn):
    """Each query's best-scoring candidate (ties: the nearer neighbour, as argmax would),
    written as `out_dir/QUERYLANG-NNNNN.npz`."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def process(self, keyed):
        (query_lang, number), scored = keyed
        scored = list(scored)
        query = np.concatenate([b.query for b, _ in scored])
        rank = np.concatenate([b.rank for b, _ in scored])
        target = np.concatenate([b.target for b, _ in scored])
        cos = np.concatenate([b.cos for b, _ in scored])
        score = np.concatenate([s for _, s in scored])
        order = np.lexsort((rank, -score, query))
        _, first = np.unique(query[order], return_index=True)
        best = order[first]
        buffer = io.BytesIO()
        np.savez(buffer, query=query[best], target=target[best], score=score[best], cos=cos[best])
        path = FileSystems.join(self.out_dir, f"{query_lang}-{number:05d}.npz")
        with FileSystems.create(path) as out:
            out.write(buffer.getvalue())
        yield path


def _query_shards(emb_dir: str, lang: str) -> list[tuple[str, int, str, int]]:
    """(lang, shard number, vectors path, id of its first row) per shard."""
    return [(lang, *offset) for offset in shard_offsets(list_shards(emb_dir, lang))]


def build_search_pipeline(
    pipeline, emb_dir, index_dir, src, tgt, k, candidates, margin_kind, work_dir
):
    """kNN of every query shard in both directions (in parallel), margins by a keyed join of
    candidates with the other side's neighbour means, and each query's best candidate."""
    shards = {lang: _query_shards(emb_dir, lang) for lang in (src, tgt)}
    means, blocks = [], []
    for query, target in ((src, tgt), (tgt, src)):
        index_path = FileSystems.join(index_dir, f"{target}.faiss")
        starts = [offset for *_, offset in shards[target]]
        searched = (
            pipeline
            | f"QueryShards_{query}" >> beam.Create(shards[query])
            | f"Spread_{query}" >> beam.Reshuffle()
            | f"Search_{query}_in_{target}"
            >> beam.ParDo(
                SearchShard(index_path, emb_dir, target, starts, k, candidates)
            ).with_outputs("means", main="candidates")
        )
        means.append(searched.means)
        blocks.append(searched.candidates)
    return (
        {
            "means": means | "AllMeans" >> beam.Flatten(),
            "candidates": blocks | "AllCandidates" >> beam.Flatten(),
        }
        | "JoinMeansByShard" >> beam.CoGroupByKey()
        | "Score" >> beam.ParDo(ScoreCandidates(margin_kind))
        | "ByQueryShard" >> beam.GroupByKey()
        | "BestPerQuery" >> beam.ParDo(BestPerQuery(work_dir))
    )


def best_both_directions(
    emb_dir, index_dir, src, tgt, k, candidates, margin_kind, work_dir, options
):
    """(forward, backward) best candidates, as Pairs with src/tgt row ids."""
    with beam.Pipeline(options=options) as pipeline:
        build_search_pipeline(
            pipeline, emb_dir, index_dir, src, tgt, k, candidates, margin_kind, work_dir
        )
    forward, backward = _load_best(work_dir, src), _load_best(work_dir, tgt)
    # backward's queries are targets: swap into (src, tgt) orientation
    backward = Pairs(backward.tgt, backward.src, backward.score, backward.cos)
    return forward, backward


def _load_best(work_dir: str, lang: str) -> Pairs:
    """The per-shard best candidates in shard order (an empty shard wrote no file)."""
    pattern = FileSystems.join(work_dir, f"{lang}-*.npz")
    parts = []
    for path in sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
        with FileSystems.open(path) as stream:
            arrays = np.load(io.BytesIO(stream.read()))
            parts.append([arrays[name] for name in ("query", "target", "score", "cos")])
    if not parts:
        return Pairs(
            *(np.zeros(0, dtype) for dtype in (np.int64, np.int64, np.float32, np.float32))
        )
    return Pairs(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def same_text(a: str, b: str) -> bool:
    return normalize_text(a).casefold() == normalize_text(b).casefold()


def filter_pairs(pairs, src_text, tgt_text, threshold, max_score, min_cosine=None):
    """Indices into `pairs` that pass, and counts of those dropped by reason.

    `min_cosine` is a floor on the plain cosine beside the margin threshold: a margin compares a
    pair with its neighbourhood only, so in a sparse neighbourhood (a sentence with no
    translation on the other side) an unrelated pair can still score well.
    """
    keep = []
    dropped = {
        "below_threshold": 0,
        "above_max_score": 0,
        "below_min_cosine": 0,
        "identical_text": 0,
    }
    for i, (s, t, score, cos) in enumerate(
        zip(pairs.src, pairs.tgt, pairs.score, pairs.cos, strict=True)
    ):
        if score < threshold:
            dropped["below_threshold"] += 1
        elif max_score is not None and score > max_score:
            dropped["above_max_score"] += 1
        elif min_cosine is not None and cos < min_cosine:
            dropped["below_min_cosine"] += 1
        elif same_text(src_text[s], tgt_text[t]):
            dropped["identical_text"] += 1
        else:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64), dropped


def below_threshold_sample(pairs, src_text, tgt_text, threshold, size: int = 10) -> list[dict]:
    """The best-scoring pairs that the threshold dropped: what a slightly lower one would add."""
    below = np.flatnonzero(pairs.score < threshold)[:size]
    return [
        {
            "score": round(float(pairs.score[i]), 4),
            "src_text": src_text[pairs.src[i]],
            "tgt_text": tgt_text[pairs.tgt[i]],
        }
        for i in below
    ]


def default_threshold(margin_kind: str, encoder_dir: str | None) -> float:
    """The encoder's calibrated threshold (ccmine_encoder.json) if any, else the neutral point
    of the margin (1.0 for ratio: as similar as the neighbourhood average)."""
    from mining.encoders.loading import read_encoder_config

    if encoder_dir:
        found = read_encoder_config(encoder_dir).get("mining_threshold", {}).get(margin_kind)
        if found is not None:
            return float(found)
    return 1.0 if margin_kind == "ratio" else 0.0


def read_bitext(bitext_dir: str) -> pa.Table:
    """All parts of a mined pair directory, best score first."""
    pattern = FileSystems.join(bitext_dir, "part-*.parquet")
    parts = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    tables = []
    for path in parts:
        with FileSystems.open(path) as stream:
            tables.append(pq.read_table(io.BytesIO(stream.read())))
    return pa.concat_tables(tables) if tables else BITEXT_SCHEMA.empty_table()


def write_bitext(out_dir: str, table: pa.Table) -> list[str]:
    paths = []
    for part, start in enumerate(range(0, max(table.num_rows, 1), ROWS_PER_PART)):
        path = FileSystems.join(out_dir, f"part-{part:05d}.parquet")
        sink = pa.BufferOutputStream()
        pq.write_table(table.slice(start, ROWS_PER_PART), sink)
        with FileSystems.create(path) as out:
            out.write(sink.getvalue().to_pybytes())
        paths.append(path)
    return paths


def run(
    run_dir: str,
    src: str,
    tgt: str,
    k: int = 4,
    margin_kind: str = "ratio",
    mode: str = "max",
    threshold: float | None = None,
    max_score: float | None = None,
    min_cosine: float | None = None,
    candidates: int | None = None,
    beam_args: list[str] | None = None,
) -> dict:
    """Mine src-tgt pairs into RUN_DIR/bitext/SRC-TGT/ (its own stage directory)."""
    emb_dir = require_complete(run_dir, "embeddings")
    index_dir = require_complete(run_dir, "indexes")
    config = stage_config(
        run_dir, src, tgt, k, margin_kind, mode, threshold, max_score, min_cosine, candidates
    )
    candidates = config["candidates"]
    encoder_dir = read_marker(run_dir, "embeddings")["config"].get("encoder_dir")
    if threshold is None:
        threshold = default_threshold(margin_kind, encoder_dir)
    pair_name = f"{src}-{tgt}"
    writer = StageWriter(FileSystems.join(run_dir, STAGE), pair_name)
    try:
        forward, backward = best_both_directions(
            emb_dir,
            index_dir,
            src,
            tgt,
            k,
            candidates,
            margin_kind,
            writer.path(),
            PipelineOptions(beam_args or []),
        )
        for path in (FileSystems.join(writer.path(), f"{lang}-*.npz") for lang in (src, tgt)):
            FileSystems.delete([m.path for m in FileSystems.match([path])[0].metadata_list])
        pairs = combine(forward, backward, mode)
        src_ids = load_ids(emb_dir, src, columns=["hash", "text", "url"])
        tgt_ids = load_ids(emb_dir, tgt, columns=["hash", "text", "url"])
        src_text = src_ids.column("text").to_pylist()
        tgt_text = tgt_ids.column("text").to_pylist()
        keep, dropped = filter_pairs(pairs, src_text, tgt_text, threshold, max_score, min_cosine)
        s_rows, t_rows = pairs.src[keep], pairs.tgt[keep]
        table = pa.table(
            {
                "src_lang": pa.array([src] * len(keep), pa.string()),
                "tgt_lang": pa.array([tgt] * len(keep), pa.string()),
                "src_text": src_ids.column("text").take(s_rows),
                "tgt_text": tgt_ids.column("text").take(t_rows),
                "score": pa.array(pairs.score[keep], pa.float32()),
                "cosine": pa.array(pairs.cos[keep], pa.float32()),
                "src_url": src_ids.column("url").take(s_rows),
                "tgt_url": tgt_ids.column("url").take(t_rows),
                "src_hash": src_ids.column("hash").take(s_rows),
                "tgt_hash": tgt_ids.column("hash").take(t_rows),
            },
            schema=BITEXT_SCHEMA,
        )
        write_bitext(writer.path(), table)
    except BaseException:
        writer.abandon()
        raise
    counts, edges = np.histogram(pairs.score, bins=40)
    stats = {
        "src_sentences": len(src_text),
        "tgt_sentences": len(tgt_text),
        "candidates": len(pairs.score),
        "kept": int(len(keep)),
        "dropped": dropped,
        "threshold": threshold,
        "min_cosine": min_cosine,
        "below_threshold_sample": below_threshold_sample(pairs, src_text, tgt_text, threshold),
        "score_histogram": {"counts": counts.tolist(), "edges": edges.round(4).tolist()},
    }
    writer.commit(stats, config)
    return stats


def stage_config(
    run_dir, src, tgt, k, margin_kind, mode, threshold, max_score, min_cosine, candidates
) -> dict:
    """`threshold` as asked for (None: the encoder's or the margin's default)."""
    return {
        "embeddings": upstream_id(run_dir, "embeddings"),
        "indexes": upstream_id(run_dir, "indexes"),
        "src": src,
        "tgt": tgt,
        "k": k,
        "margin": margin_kind,
        "mode": mode,
        "threshold": threshold,
        "max_score": max_score,
        "min_cosine": min_cosine,
        "candidates": candidates or faiss_index.CANDIDATES,
    }

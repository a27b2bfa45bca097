"""kNN in both directions over index shards, margins by keyed joins, each sentence's best candidate.

One work item per (query shard, index shard): the worker searches the query shard's vectors in
that index shard (loaded once per worker and kept while its items follow each other; IVF-PQ
candidates re-scored with that shard's exact vectors only) and writes each query's top k there.
The per-shard lists are merged into each query's global top k by query shard (GroupByKey, then
a fold that reads one list at a time: a lifted CombinePerKey would hold one rows x k
accumulator per query shard a worker has seen in a bundle, i.e. all of them for a worker that
walks one index shard). Neighbour means come from the merged lists, so margins equal an
unsharded search's. Candidates are then joined by key (the target's embedding shard) with the
target side's means, scored, and reduced to each query's best candidate.

Blocks go between steps as work files (pipelines/work_files.py); elements are (key, path).
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from indexes import faiss_index, shards
from mining.embedding_store import ShardLayout, read_vectors
from mining.margin import best_per_query, margin
from mining.matching import BACKWARD, FORWARD, Edges
from mining.topk import merge_topk, neighbour_means, pad_topk
from pipelines.work_files import get, put

# With fewer index shards than this, the (query shard, index shard) items are spread over
# workers one by one (each worker still loads each index shard once); with more, the items of
# one index shard stay together on one worker, which then loads it once for all of them.
SPREAD_ITEMS_BELOW = 32


@dataclass
class TopK:
    """Neighbour lists of the rows of a query shard that start at row id `offset`: (n, k)
    similarities and target row ids, best first, missing entries id -1."""

    offset: int
    sims: np.ndarray
    ids: np.ndarray


@dataclass
class CandidateBlock:
    """Candidates of one query shard: query row ids, neighbour rank, target row ids, cosine."""

    query_lang: str
    query_shard: int
    query: np.ndarray
    rank: np.ndarray
    target: np.ndarray
    cos: np.ndarray


class SearchIndexShard(beam.DoFn):
    """Searches one query shard in one index shard; emits the top k keyed by query shard."""

    def __init__(
        self,
        index_dir: str,
        target: ShardLayout,
        spec: dict,
        query: ShardLayout,
        k: int,
        candidates: int,
        work_dir: str,
        namespace: str,
    ):
        self.work_dir = work_dir
        self.namespace = namespace
        self.index_dir = index_dir
        self.target = target
        self.spec = spec
        self.query = query
        self.k = k
        self.candidates = candidates

    def setup(self):
        self._loaded = None  # (shard number, index, exact vectors or None)

    def _load(self, shard: dict):
        if self._loaded is None or self._loaded[0] != shard["number"]:
            self._loaded = None  # free the previous shard first
            path = FileSystems.join(self.index_dir, shard["path"])
            index = faiss_index.load_index(path)
            rows = shard["stop"] - shard["start"]
            shards.check_loaded(index, path, rows, self.target.dim)
            spec = faiss_index.IndexSpec(**self.spec)
            exact = None
            if spec.index_type != "flat":
                exact = self.target.read_rows(shard["start"], shard["stop"]).astype(np.float16)
            self._loaded = (shard["number"], faiss_index.ready_to_search(index, spec), exact)
            Metrics.counter(self.namespace, "index_shard_loads").inc()
        return self._loaded[1:]

    def process(self, item):
        shard, query_number = item
        index, exact = self._load(shard)
        vectors = read_vectors(self.query.npys[query_number])
        sims, ids = faiss_index.search(index, vectors, self.k, exact, self.candidates)
        ids = np.where(ids >= 0, ids + shard["start"], ids)
        sims, ids = pad_topk(sims, ids, min(self.k, self.target.rows))
        Metrics.counter(self.namespace, "search_items").inc()
        name = f"topk/{self.query.lang}-{query_number:05d}-in-{shard['number']:05d}"
        block = TopK(self.query.starts[query_number], sims, ids)
        yield (self.query.lang, query_number), put(self.work_dir, name, block)


class MergeTopK(beam.DoFn):
    """Folds a query shard's per-index-shard lists into its global top k; emits its neighbour
    means keyed by (query language, shard) on `means`, and its candidates keyed by the target
    (language, shard) holding each neighbour."""

    def __init__(self, target: ShardLayout, work_dir: str):
        self.target = target
        self.work_dir = work_dir

    def process(self, keyed):
        (query_lang, number), paths = keyed
        merged = None
        for path in paths:
            part = get(path)
            if merged is None:
                merged = part
            else:
                k = part.sims.shape[1]
                merged = TopK(
                    part.offset, *merge_topk(merged.sims, merged.ids, part.sims, part.ids, k)
                )
        means = neighbour_means(merged.sims, merged.ids)
        path = put(self.work_dir, f"means/{query_lang}-{number:05d}", (merged.offset, means))
        yield beam.pvalue.TaggedOutput("means", ((query_lang, number), path))
        rows, cols = np.nonzero(merged.ids >= 0)
        targets = merged.ids[rows, cols]
        target_shard = self.target.shard_of(targets)
        for shard in np.unique(target_shard):
            sel = target_shard == shard
            r, c = rows[sel], cols[sel]
            block = CandidateBlock(
                query_lang, number, merged.offset + r, c, targets[sel], merged.sims[r, c]
            )
            name = f"candidates/{self.target.lang}-{shard:05d}-from-{query_lang}-{number:05d}"
            yield (self.target.lang, int(shard)), put(self.work_dir, name, (block, means[r]))


class ScoreCandidates(beam.DoFn):
    """The keyed join: candidates that point into one target shard meet that shard's neighbour
    means and get their margin scores; re-keyed by the query shard they came from. A candidate
    whose either side found no neighbour at all (possible with IVF) has no margin: counted."""

    def __init__(self, margin_kind: str, work_dir: str, namespace: str):
        self.margin_kind = margin_kind
        self.work_dir = work_dir
        self.namespace = namespace

    def process(self, joined):
        (target_lang, target_shard), grouped = joined
        (means_path,) = grouped["means"]  # every target shard was a query shard
        offset, target_means = get(means_path)
        for path in grouped["candidates"]:
            block, query_means = get(path)
            scores = margin(
                block.cos, query_means, target_means[block.target - offset], self.margin_kind
            )
            unscored = np.isnan(scores)
            if unscored.any():
                Metrics.counter(self.namespace, "candidates_without_neighbourhood").inc(
                    int(unscored.sum())
                )
            name = (
                f"scored/{block.query_lang}-{block.query_shard:05d}"
                f"-to-{target_lang}-{target_shard:05d}"
            )
            key = (block.query_lang, block.query_shard)
            yield key, put(self.work_dir, name, (block, scores))


class BestPerQuery(beam.DoFn):
    """Each query's best-scoring candidate, as Edges in (source, target) orientation, written
    per query shard."""

    def __init__(self, src_lang: str, work_dir: str):
        self.src_lang = src_lang
        self.work_dir = work_dir

    def process(self, keyed):
        (query_lang, number), paths = keyed
        scored = [get(path) for path in paths]
        query = np.concatenate([b.query for b, _ in scored])
        target = np.concatenate([b.target for b, _ in scored])
        cos = np.concatenate([b.cos for b, _ in scored])
        score = np.concatenate([s for _, s in scored])
        rank = np.concatenate([b.rank for b, _ in scored])
        valid = ~np.isnan(score)
        query, target, cos, score, rank = (a[valid] for a in (query, target, cos, score, rank))
        best = best_per_query(query, rank, score)
        forward = query_lang == self.src_lang
        src, tgt = (query, target) if forward else (target, query)
        direction = np.full(len(best), FORWARD if forward else BACKWARD, np.int8)
        edges = Edges(src[best], tgt[best], score[best].astype(np.float32), cos[best], direction)
        yield (query_lang, number), put(self.work_dir, f"best/{query_lang}-{number:05d}", edges)


def expand_items(shard: dict, query_shards: int) -> list:
    """An index shard's work items: (index shard record, query shard number)."""
    return [(shard, number) for number in range(query_shards)]


def build_best_candidates(
    pipeline, index_dir, layouts, metas, src, tgt, k, candidates, margin_kind, work_dir, namespace
):
    """Each sentence's best candidate in both directions: ((query lang, shard), path of its
    Edges) per query shard (FORWARD edges for src queries, BACKWARD for tgt queries); counters
    in `namespace`."""
    means, blocks = [], []
    for query, target in ((src, tgt), (tgt, src)):
        meta, query_layout = metas[target], layouts[query]
        items = (
            pipeline
            | f"IndexShards_{target}" >> beam.Create(meta["shards"])
            | f"SpreadIndexShards_{target}" >> beam.Reshuffle()
            | f"Items_{query}_in_{target}" >> beam.FlatMap(expand_items, query_layout.shards)
        )
        if len(meta["shards"]) < SPREAD_ITEMS_BELOW:
            items = items | f"SpreadItems_{query}_in_{target}" >> beam.Reshuffle()
        searched = (
            items
            | f"Search_{query}_in_{target}"
            >> beam.ParDo(
                SearchIndexShard(
                    index_dir,
                    layouts[target],
                    meta["spec"],
                    query_layout,
                    k,
                    candidates,
                    work_dir,
                    namespace,
                )
            )
            | f"ByQueryShard_{query}" >> beam.GroupByKey()
            | f"MergeTopK_{query}"
            >> beam.ParDo(MergeTopK(layouts[target], work_dir)).with_outputs(
                "means", main="candidates"
            )
        )
        means.append(searched.means)
        blocks.append(searched.candidates)
    return (
        {
            "means": means | "AllMeans" >> beam.Flatten(),
            "candidates": blocks | "AllCandidates" >> beam.Flatten(),
        }
        | "JoinMeansByShard" >> beam.CoGroupByKey()
        | "Score" >> beam.ParDo(ScoreCandidates(margin_kind, work_dir, namespace))
        | "ScoredByQueryShard" >> beam.GroupByKey()
        | "BestPerQuery" >> beam.ParDo(BestPerQuery(src, work_dir))
    )

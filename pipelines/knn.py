"""kNN in both directions over index shards, margins by keyed joins, each sentence's best candidate.

One work item per (query shard, index shard): the worker searches the query shard's vectors in
that index shard (IVF-PQ candidates re-scored with that shard's exact vectors only) and writes
each query's top k there. An index shard's items go to workers in tasks (one item each in a
small job, up to ITEMS_PER_TASK in a large one), and a task loads its index shard once for all
its items. The per-shard lists are merged into each query's global top k by query shard
(GroupByKey, then a fold that reads one list at a time: a lifted CombinePerKey would hold one
rows x k accumulator per query shard a worker has seen in a bundle, i.e. all of them for a
worker that walks one index shard). Neighbour means come from the merged lists, so margins equal
an unsharded search's. Candidates are then joined by key (the group of target embedding shards
holding their neighbour, see pipelines/pair_context.py) with the target side's means, scored, and
reduced to each query's best candidate.

All pairs of a job share these steps: every key starts with the pair's name
(pipelines/pair_context.py), and a task holds the items of every pair whose queries meet its
index shard's language, so a language mined against several others (en against de, fr and zh)
has each of its index shards loaded once per task, not once per pair.

Blocks go between steps as work files (pipelines/work_files.py); elements are (key, path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from indexes import faiss_index, shards
from mining.embedding_store import ShardLayout, read_vectors
from mining.margin import best_per_query, margin
from mining.matching import BACKWARD, FORWARD, Edges
from mining.topk import MISSING_ID, merge_topk, neighbour_means, pad_topk
from pipelines.pair_context import job_pairs, read_job
from pipelines.progress import Progress
from pipelines.work_files import get, put

# Work items (searches of a query shard in an index shard) go to workers in tasks. A task loads its
# index shard once, so larger tasks load less often; the tasks are what the search spreads over
# workers, so smaller ones keep more of them busy. A job makes tasks of one item until it has
# TASKS_WANTED of them (enough for a few hundred worker processes), and of up to ITEMS_PER_TASK
# items beyond. (Before tasks, an index shard's items stayed together from 32 index shards in a
# job on, each one after another on one worker: for en mined against 16 languages, every search
# of an en index shard, for all 16 pairs. And tasks of 8 in a small job leave cores idle: README,
# "Scaling out".)
ITEMS_PER_TASK = 8
TASKS_WANTED = 1000
log = logging.getLogger("ccmine")


@dataclass
class TopK:
    """Neighbour lists, found in one index shard, of the rows of a query shard that start at
    row id `offset`: (n, k) similarities, best first, and the neighbours' rows within the index
    shard, whose first row is `base` (int32, -1 for a missing entry). These blocks are most of
    the bytes a mine writes, every query shard's in every index shard: int32 rows make them a
    third smaller than int64 row ids."""

    offset: int
    sims: np.ndarray
    rows: np.ndarray
    base: int

    def ids(self) -> np.ndarray:
        """The neighbours' row ids (int64, MISSING_ID for a missing entry)."""
        return np.where(self.rows >= 0, self.rows.astype(np.int64) + self.base, MISSING_ID)


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
    """Searches the items of a task, each a query shard of a pair in the task's index shard
    (loaded once for all of them, whichever pairs they are for); emits each top k keyed by
    (pair, query language, query shard)."""

    def __init__(self, job: str, k: int, candidates: int):
        self.job = job  # the path of its MineJob (pipelines/pair_context.py)
        self.k = k
        self.candidates = candidates

    def setup(self):
        self._loaded = None  # ((language, shard number), index, exact vectors or None)
        self._progress = Progress(
            "mine: search", "queries searched in an index shard by this worker"
        )

    def _load(self, shard: dict, target: ShardLayout, namespace: str):
        key = (target.lang, shard["number"])
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the previous shard first
            job = read_job(self.job)
            path = FileSystems.join(job.index_dir, shard["path"])
            index = faiss_index.load_index(path)
            rows = shard["stop"] - shard["start"]
            shards.check_loaded(index, path, rows, target.dim)
            spec = faiss_index.IndexSpec(**job.metas[target.lang]["spec"])
            exact = None
            if spec.index_type != "flat":
                exact = target.read_rows(shard["start"], shard["stop"]).astype(np.float16)
            self._loaded = (key, faiss_index.ready_to_search(index, spec), exact)
            # Counted for the pair whose item needed it: the pairs' counts add up to the loads.
            Metrics.counter(namespace, "index_shard_loads").inc()
        return self._loaded[1:]

    def process(self, task):
        for item in task:
            yield from self._search(item)

    def _search(self, item):
        lang, shard, name, query_number = item
        pair = job_pairs(self.job)[name]
        target, query = pair.layouts[lang], pair.layouts[pair.other(lang)]
        index, exact = self._load(shard, target, pair.namespace)
        vectors = read_vectors(query.npys[query_number])
        sims, rows = faiss_index.search(index, vectors, self.k, exact, self.candidates)
        sims, rows = pad_topk(sims, rows, min(self.k, target.rows))
        Metrics.counter(pair.namespace, "search_items").inc()
        self._progress.step(len(vectors))
        block_name = f"topk/{query.lang}-{query_number:05d}-in-{shard['number']:05d}"
        block = TopK(query.starts[query_number], sims, rows.astype(np.int32), shard["start"])
        yield (name, query.lang, query_number), put(pair.work, block_name, block)


class MergeTopK(beam.DoFn):
    """Folds a query shard's per-index-shard lists into its global top k; emits its neighbour
    means on `means`, keyed by (pair, query language, its shard's group), and its candidates
    keyed by the (pair, target language, group of shards) holding each neighbour."""

    def __init__(self, job: str):
        self.job = job

    def process(self, keyed):
        (name, query_lang, number), paths = keyed
        pair = job_pairs(self.job)[name]
        target = pair.layouts[pair.other(query_lang)]
        sims = ids = None
        for path in paths:
            part = get(path)
            offset = part.offset
            if sims is None:
                sims, ids = part.sims, part.ids()
            else:
                sims, ids = merge_topk(sims, ids, part.sims, part.ids(), part.sims.shape[1])
        means = neighbour_means(sims, ids)
        path = put(pair.work, f"means/{query_lang}-{number:05d}", (offset, means))
        group = pair.shard_group(query_lang, number)
        yield beam.pvalue.TaggedOutput("means", ((name, query_lang, group), path))
        rows, cols = np.nonzero(ids >= 0)
        targets = ids[rows, cols]
        target_group = pair.group_of(target.lang, targets)
        for group in np.unique(target_group):
            sel = target_group == group
            r, c = rows[sel], cols[sel]
            block = CandidateBlock(query_lang, number, offset + r, c, targets[sel], sims[r, c])
            block_name = f"candidates/{target.lang}-g{group:05d}-from-{query_lang}-{number:05d}"
            yield (name, target.lang, int(group)), put(pair.work, block_name, (block, means[r]))


class ScoreCandidates(beam.DoFn):
    """The keyed join: candidates that point into one group of target shards meet those shards'
    neighbour means and get their margin scores; re-keyed by the query shard they came from. A
    candidate whose either side found no neighbour at all (possible with IVF) has no margin:
    counted."""

    def __init__(self, margin_kind: str, job: str):
        self.margin_kind = margin_kind
        self.job = job

    def process(self, joined):
        (name, target_lang, group), grouped = joined
        pair = job_pairs(self.job)[name]
        # every target shard was a query shard; a group's shards hold consecutive rows
        shard_means = sorted((get(path) for path in grouped["means"]), key=lambda m: m[0])
        offset = shard_means[0][0]
        target_means = np.concatenate([means for _, means in shard_means])
        for path in grouped["candidates"]:
            block, query_means = get(path)
            scores = margin(
                block.cos, query_means, target_means[block.target - offset], self.margin_kind
            )
            unscored = np.isnan(scores)
            if unscored.any():
                Metrics.counter(pair.namespace, "candidates_without_neighbourhood").inc(
                    int(unscored.sum())
                )
            block_name = (
                f"scored/{block.query_lang}-{block.query_shard:05d}-to-{target_lang}-g{group:05d}"
            )
            key = (name, block.query_lang, block.query_shard)
            yield key, put(pair.work, block_name, (block, scores))


class BestPerQuery(beam.DoFn):
    """Each query's best-scoring candidate, as Edges in (source, target) orientation, written
    per query shard."""

    def __init__(self, job: str):
        self.job = job

    def process(self, keyed):
        (name, query_lang, number), paths = keyed
        pair = job_pairs(self.job)[name]
        scored = [get(path) for path in paths]
        query = np.concatenate([b.query for b, _ in scored])
        target = np.concatenate([b.target for b, _ in scored])
        cos = np.concatenate([b.cos for b, _ in scored])
        score = np.concatenate([s for _, s in scored])
        rank = np.concatenate([b.rank for b, _ in scored])
        valid = ~np.isnan(score)
        query, target, cos, score, rank = (a[valid] for a in (query, target, cos, score, rank))
        best = best_per_query(query, rank, score)
        forward = query_lang == pair.src
        src, tgt = (query, target) if forward else (target, query)
        direction = np.full(len(best), FORWARD if forward else BACKWARD, np.int8)
        edges = Edges(src[best], tgt[best], score[best].astype(np.float32), cos[best], direction)
        block_name = f"best/{query_lang}-{number:05d}"
        yield (name, query_lang, number), put(pair.work, block_name, edges)


def index_shards(lang: str, job: str) -> list:
    """A language's index shards: (language, shard record)."""
    return [(lang, shard) for shard in read_job(job).metas[lang]["shards"]]


def search_tasks(index_shard: tuple[str, dict], job: str, size: int) -> list[list]:
    """An index shard's work items, one per query shard that searches it, of every pair, in
    tasks of up to `size`: (language, index shard record, pair name, query shard number)."""
    lang, shard = index_shard
    items = [
        (lang, shard, pair.name, number)
        for pair in job_pairs(job).values()
        if lang in (pair.src, pair.tgt)
        for number in range(pair.layouts[pair.other(lang)].shards)
    ]
    return [items[start : start + size] for start in range(0, len(items), size)]


def search_items(job: str) -> int:
    """How many work items a job's search has: for every pair and side, the side's index shards
    times the other side's query shards."""
    inputs = read_job(job)
    return sum(
        len(inputs.metas[lang]["shards"]) * pair.layouts[pair.other(lang)].shards
        for pair in inputs.pairs.values()
        for lang in (pair.src, pair.tgt)
    )


def task_size(job: str) -> int:
    """Items per search task for a job (see TASKS_WANTED)."""
    return min(ITEMS_PER_TASK, max(1, search_items(job) // TASKS_WANTED))


def build_best_candidates(pipeline, job, k, candidates, margin_kind):
    """Each sentence's best candidate in both directions, for every pair of the job (the path of
    its MineJob): ((pair name, query lang, shard), path of its Edges) per query shard (FORWARD
    edges for src queries, BACKWARD for tgt queries)."""
    pairs = job_pairs(job).values()
    langs = sorted({lang for pair in pairs for lang in (pair.src, pair.tgt)})
    log.info("mine: %d searches of a query shard in an index shard", search_items(job))
    searched = (
        pipeline
        | "Languages" >> beam.Create(langs)
        | "IndexShards" >> beam.FlatMap(index_shards, job)
        | "Tasks" >> beam.FlatMap(search_tasks, job, task_size(job))
        | "SpreadTasks" >> beam.Reshuffle()
        | "Search" >> beam.ParDo(SearchIndexShard(job, k, candidates))
        | "ByQueryShard" >> beam.GroupByKey()
        | "MergeTopK" >> beam.ParDo(MergeTopK(job)).with_outputs("means", main="candidates")
    )
    return (
        {"means": searched.means, "candidates": searched.candidates}
        | "JoinMeansByGroup" >> beam.CoGroupByKey()
        | "Score" >> beam.ParDo(ScoreCandidates(margin_kind, job))
        | "ScoredByQueryShard" >> beam.GroupByKey()
        | "BestPerQuery" >> beam.ParDo(BestPerQuery(job))
    )

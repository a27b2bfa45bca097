"""Bitext assembly in Beam: the selected pairs become Parquet parts, written by workers.

Workers read the selected pair blocks, apply the score cuts (threshold, score ceiling, cosine
floor) with a counter per reason, join the texts, URLs and hashes by key (pairs grouped by group
of source shards meet those shards' id files, then by group of target shards), drop pairs whose
two sides are the same text, and write the parts. Keyed by groups (pipelines/pair_context.py),
the blocks sent from the source side to the target side number groups x groups, not shards x
shards, and the rows feeding the parts one per target group; a worker holds one group's pairs
with their texts. The score histogram and the sample of the best pairs below the
threshold come from combiners and are written as small JSON files for the stage's stats.
All pairs of a job share these steps: every key starts with the pair's name
(pipelines/pair_context.py), and the combiners are per pair.
Blocks go between steps as work files (pipelines/work_files.py); elements are (key, path).

Parts are score ranges cut at approximate quantiles: part-00000 holds the best pairs, each part
is sorted by score (ties: forward candidates first, then by the query's row id) and every score
in a part is at least every score in the next, so the parts read in name order are the whole
bitext best first.
"""

from __future__ import annotations

import math

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from mining.embedding_store import ShardLayout
from mining.matching import Edges, best_first, empty_edges
from mining.pair_filters import KEEP, SCORE_REASONS, same_text, score_reasons
from pipelines.pair_context import job_pairs
from pipelines.select import list_blocks, split_edges
from pipelines.stage_dir import write_json
from pipelines.work_files import get, name_of, put

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
ROWS_PER_PART = 250_000
QUANTILES = 1001  # part boundaries are chosen among these: at most 1,000 parts
HISTOGRAM_BINS = 40
SAMPLE_SIZE = 10
ORDER = [("score", "descending"), ("direction", "ascending"), ("query", "ascending")]


def _count(namespace: str, name: str, n: int) -> None:
    if n:
        Metrics.counter(namespace, name).inc(int(n))


class ScoreCuts(beam.DoFn):
    """Counts a pair's selected pairs, drops those failing its score cuts (counted by reason),
    passes the rest on by (pair, source group), and sends each block's best pairs below the
    threshold to the `below` output for the sample."""

    def __init__(self, job: str):
        self.job = job  # the path of its MineJob (pipelines/pair_context.py)

    def process(self, named):
        name, path = named
        pair = job_pairs(self.job)[name]
        edges = get(path)
        _count(pair.namespace, "candidates", len(edges))
        reasons = score_reasons(edges.score, edges.cos, *pair.cuts)
        for code, reason in enumerate(SCORE_REASONS):
            _count(pair.namespace, f"dropped:{reason}", np.count_nonzero(reasons == code))
        below = edges.take(reasons == 0)
        yield beam.pvalue.TaggedOutput("below", (name, below.take(best_first(below)[:SAMPLE_SIZE])))
        kept = edges.take(reasons == KEEP)
        for group, part in split_edges(kept, pair.group_of(pair.src, kept.src)):
            yield (name, group), put(pair.work, f"kept/src{group:05d}-from-{name_of(path)}", part)


class BestEdges(beam.CombineFn):
    """The best `size` edges in the total order (mining/matching.py)."""

    def __init__(self, size: int):
        self.size = size

    def create_accumulator(self):
        return empty_edges()

    def add_input(self, best, edges):
        pooled = Edges.concat([best, edges])
        return pooled.take(best_first(pooled)[: self.size])

    def merge_accumulators(self, accumulators):
        pooled = Edges.concat(list(accumulators))
        return pooled.take(best_first(pooled)[: self.size])

    def extract_output(self, best):
        return best


def _ids_by_shard(layout: ShardLayout, rows: np.ndarray) -> tuple[np.ndarray, pa.Table]:
    """An order that sorts `rows` by shard, and the id columns (hash, text, url) of the rows in
    that order, read shard by shard."""
    shard_of = layout.shard_of(rows)
    order = np.argsort(shard_of, kind="stable")
    rows, shard_of = rows[order], shard_of[order]
    tables = [
        layout.read_ids(shard, ["hash", "text", "url"]).take(
            rows[shard_of == shard] - layout.starts[shard]
        )
        for shard in np.unique(shard_of)
    ]
    return order, pa.concat_tables(tables)


def _texts(layout: ShardLayout, rows: np.ndarray) -> dict[int, str]:
    """{row id: text} of the given rows."""
    if not len(rows):
        return {}
    order, ids = _ids_by_shard(layout, rows)
    return dict(zip(rows[order].tolist(), ids.column("text").to_pylist(), strict=True))


def sample_rows(edges: Edges, src: ShardLayout, tgt: ShardLayout) -> list[dict]:
    """The sample pairs with their texts, best first."""
    edges = edges.take(best_first(edges))
    src_text = _texts(src, edges.src)
    tgt_text = _texts(tgt, edges.tgt)
    return [
        {"score": round(float(score), 4), "src_text": src_text[s], "tgt_text": tgt_text[t]}
        for s, t, score in zip(edges.src.tolist(), edges.tgt.tolist(), edges.score, strict=True)
    ]


class AttachSource(beam.DoFn):
    """Pairs of one group of source shards get their source text, URL and hash from those
    shards' id files; passed on by (pair, target group) as Arrow tables."""

    def __init__(self, job: str):
        self.job = job  # the path of its MineJob (pipelines/pair_context.py)

    def process(self, keyed):
        (name, group), paths = keyed
        pair = job_pairs(self.job)[name]
        edges = Edges.concat([get(path) for path in paths])
        order, ids = _ids_by_shard(pair.layouts[pair.src], edges.src)
        edges = edges.take(order)
        target_group = pair.group_of(pair.tgt, edges.tgt)
        for number in np.unique(target_group):
            rows = target_group == number
            table = pa.table(
                {
                    "tgt_row": edges.tgt[rows],
                    "score": edges.score[rows],
                    "cosine": edges.cos[rows],
                    "direction": edges.direction[rows],
                    "query": edges.query[rows],
                    "src_text": ids.column("text").filter(rows),
                    "src_url": ids.column("url").filter(rows),
                    "src_hash": ids.column("hash").filter(rows),
                }
            )
            block_name = f"attached/tgt{number:05d}-from-src{group:05d}"
            yield (name, int(number)), put(pair.work, block_name, table)


class AttachTarget(beam.DoFn):
    """Pairs of one group of target shards get their target side; pairs whose two sides are the
    same text are dropped (counted). Writes the bitext rows plus the ordering columns, (pair,
    path); sends their scores to the `scores` output, (pair, scores), for the part boundaries."""

    def __init__(self, job: str):
        self.job = job  # the path of its MineJob (pipelines/pair_context.py)

    def process(self, keyed):
        (name, group), paths = keyed
        pair = job_pairs(self.job)[name]
        table = pa.concat_tables([get(path) for path in paths])
        order, ids = _ids_by_shard(pair.layouts[pair.tgt], table.column("tgt_row").to_numpy())
        table = table.take(order)
        identical = _identical(table.column("src_text"), ids.column("text"))
        _count(pair.namespace, "dropped:identical_text", identical.sum())
        _count(pair.namespace, "kept", (~identical).sum())
        keep = pa.array(~identical)
        rows = len(table)
        kept = pa.table(
            {
                "src_lang": pa.array([pair.src] * rows, pa.string()),
                "tgt_lang": pa.array([pair.tgt] * rows, pa.string()),
                "src_text": table.column("src_text"),
                "tgt_text": ids.column("text"),
                "score": table.column("score").cast(pa.float32()),
                "cosine": table.column("cosine").cast(pa.float32()),
                "src_url": table.column("src_url"),
                "tgt_url": ids.column("url"),
                "src_hash": table.column("src_hash"),
                "tgt_hash": ids.column("hash"),
                "direction": table.column("direction"),
                "query": table.column("query"),
            }
        ).filter(keep)
        if len(kept):
            scores = kept.column("score").to_numpy().tolist()
            yield beam.pvalue.TaggedOutput("scores", (name, scores))
            yield name, put(pair.work, f"rows/tgt{group:05d}", kept)


def _identical(sources, targets, slice_rows: int = 10_000) -> np.ndarray:
    """same_text of each row's two texts, holding one slice of them as Python strings at a time
    (a group's pairs can be a million and more)."""
    return np.fromiter(
        (
            same_text(a, b)
            for start in range(0, len(sources), slice_rows)
            for a, b in zip(
                sources.slice(start, slice_rows).to_pylist(),
                targets.slice(start, slice_rows).to_pylist(),
                strict=True,
            )
        ),
        dtype=bool,
        count=len(sources),
    )


def part_boundaries(quantiles: list[float], count: int) -> np.ndarray:
    """Ascending score boundaries cutting `count` pairs into parts of about ROWS_PER_PART."""
    if not quantiles:
        return np.zeros(0, np.float32)
    parts = min(max(1, math.ceil(count / ROWS_PER_PART)), len(quantiles) - 1)
    at = [round(i * (len(quantiles) - 1) / parts) for i in range(1, parts)]
    cuts = np.unique(np.asarray(quantiles, np.float32)[at])
    return cuts[cuts > np.float32(quantiles[0])]  # every part gets at least one pair


def split_into_parts(named, quantiles: dict, counts: dict, job: str):
    """((pair, part number), path of the rows of a table in that part); part 0 holds the best
    scores; `quantiles` and `counts` are the pairs' score quantiles and row counts."""
    name, path = named
    table = get(path)
    cuts = part_boundaries(quantiles[name], counts[name])
    part = len(cuts) - np.searchsorted(cuts, table.column("score").to_numpy(), side="right")
    for number in np.unique(part):
        block_name = f"parts/part{number:05d}-from-{name_of(path)}"
        rows = table.filter(pa.array(part == number))
        yield (name, int(number)), put(job_pairs(job)[name].work, block_name, rows)


class WritePart(beam.DoFn):
    def __init__(self, job: str):
        self.job = job  # the path of its MineJob (pipelines/pair_context.py)

    def process(self, keyed):
        (name, number), paths = keyed
        table = pa.concat_tables([get(path) for path in paths])
        table = table.sort_by(ORDER).select(BITEXT_SCHEMA.names)
        path = FileSystems.join(job_pairs(self.job)[name].out, f"part-{number:05d}.parquet")
        write_table(table.cast(BITEXT_SCHEMA), path)
        yield path


def write_table(table: pa.Table, path: str) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    with FileSystems.create(path) as out:
        out.write(sink.getvalue().to_pybytes())


def score_range(named):
    name, path = named
    edges = get(path)
    if len(edges):
        yield name, (float(edges.score.min()), float(edges.score.max()))


def widest(ranges) -> tuple[float, float] | None:
    """Combines (low, high) ranges (partial results included; None: nothing seen)."""
    ranges = [r for r in ranges if r is not None]
    if not ranges:
        return None
    return min(low for low, _ in ranges), max(high for _, high in ranges)


def block_histogram(named, bounds: dict) -> tuple[str, np.ndarray]:
    name, path = named
    low, high = bounds.get(name) or (0.0, 1.0)
    counts, _ = np.histogram(
        get(path).score, bins=HISTOGRAM_BINS, range=(np.float32(low), np.float32(high))
    )
    return name, counts


def sum_counts(counts) -> np.ndarray:
    total = np.zeros(HISTOGRAM_BINS, np.int64)
    for part in counts:
        total += part
    return total


def histogram_json(counts, bounds) -> dict:
    low, high = bounds or (0.0, 1.0)
    _, edges = np.histogram(
        np.zeros(0, np.float32),
        bins=HISTOGRAM_BINS,
        range=(np.float32(low), np.float32(high)),
    )
    return {"counts": np.asarray(counts).tolist(), "edges": edges.round(4).tolist()}


def write_histogram(named, bounds: dict, job: str) -> None:
    name, counts = named
    path = FileSystems.join(job_pairs(job)[name].work, "histogram.json")
    write_json(path, histogram_json(counts, bounds.get(name)))


def write_sample(named, job: str) -> None:
    name, edges = named
    pair = job_pairs(job)[name]
    sample = sample_rows(edges, pair.layouts[pair.src], pair.layouts[pair.tgt])
    write_json(FileSystems.join(pair.work, "sample.json"), sample)


def named_length(named) -> tuple[str, int]:
    name, scores = named
    return name, len(scores)


def selected_blocks(name: str, job: str) -> list:
    """A pair's selected blocks: (pair, path)."""
    return [(name, path) for path in list_blocks(job_pairs(job)[name].selected)]


def build_assembly(pipeline, job):
    """Every pair's selected pair blocks (listed by a worker) to Parquet parts in its output
    directory, with its cuts; its histogram and sample JSON files in its work directory (none
    for a pair without blocks: its stats then take the empty defaults). `job`: the path of the
    job's MineJob (pipelines/pair_context.py)."""
    selected = (
        pipeline
        | "Pairs" >> beam.Create(sorted(job_pairs(job)))
        | "SelectedBlocks" >> beam.FlatMap(selected_blocks, job)
        | "Spread" >> beam.Reshuffle()
    )
    bounds = beam.pvalue.AsDict(
        selected
        | "ScoreRanges" >> beam.FlatMap(score_range)
        | "Widest" >> beam.CombinePerKey(widest)
    )
    _ = (
        selected
        | "Histograms" >> beam.Map(block_histogram, bounds)
        | "SumHistograms" >> beam.CombinePerKey(sum_counts)
        | "WriteHistogram" >> beam.Map(write_histogram, bounds, job)
    )
    # ((pair, source group), path) on the main output: Beam's inference of the DoFn's output
    # type sees the tagged output too, which GroupByKey then rejects.
    kept_type = tuple[tuple[str, int], str]
    cut = selected | "ScoreCuts" >> beam.ParDo(ScoreCuts(job)).with_output_types(
        kept_type
    ).with_outputs("below", main="kept")
    _ = (
        cut.below
        | "BestBelowThreshold" >> beam.CombinePerKey(BestEdges(SAMPLE_SIZE))
        | "WriteSample" >> beam.Map(write_sample, job)
    )
    rows = (
        cut.kept
        | "GroupBySource" >> beam.GroupByKey()
        | "AttachSource" >> beam.ParDo(AttachSource(job))
        | "GroupByTarget" >> beam.GroupByKey()
        | "AttachTarget" >> beam.ParDo(AttachTarget(job)).with_outputs("scores", main="tables")
    )
    quantiles = beam.pvalue.AsDict(
        rows.scores | "Quantiles" >> beam.ApproximateQuantiles.PerKey(QUANTILES, input_batched=True)
    )
    counts = beam.pvalue.AsDict(
        rows.scores | "Rows" >> beam.Map(named_length) | "CountRows" >> beam.CombinePerKey(sum)
    )
    _ = (
        rows.tables
        | "SplitIntoParts" >> beam.FlatMap(split_into_parts, quantiles, counts, job)
        | "GroupParts" >> beam.GroupByKey()
        | "WriteParts" >> beam.ParDo(WritePart(job))
    )

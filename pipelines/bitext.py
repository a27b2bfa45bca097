"""Bitext assembly in Beam: the selected pairs become Parquet parts, written by workers.

Workers read the selected pair blocks, apply the score cuts (threshold, score ceiling, cosine
floor) with a counter per reason, join the texts, URLs and hashes by key (pairs grouped by source
shard meet that shard's id file, then by target shard), drop pairs whose two sides are the same
text, and write the parts. The score histogram and the sample of the best pairs below the
threshold come from combiners and are written as small JSON files for the stage's stats.
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
from pipelines.select import split_by_shard
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
    """Counts the selected pairs, drops those failing a score cut (counted by reason), passes the
    rest on by source shard, and sends each block's best pairs below the threshold to the
    `below` output for the sample."""

    def __init__(
        self, threshold, max_score, min_cosine, src: ShardLayout, work_dir: str, namespace: str
    ):
        self.threshold, self.max_score, self.min_cosine = threshold, max_score, min_cosine
        self.src, self.work_dir, self.namespace = src, work_dir, namespace

    def process(self, path: str):
        edges = get(path)
        _count(self.namespace, "candidates", len(edges))
        reasons = score_reasons(
            edges.score, edges.cos, self.threshold, self.max_score, self.min_cosine
        )
        for code, name in enumerate(SCORE_REASONS):
            _count(self.namespace, f"dropped:{name}", np.count_nonzero(reasons == code))
        below = edges.take(reasons == 0)
        yield beam.pvalue.TaggedOutput("below", below.take(best_first(below)[:SAMPLE_SIZE]))
        for shard, part in split_by_shard(edges.take(reasons == KEEP), self.src, "src"):
            name = f"kept/src{shard:05d}-from-{name_of(path)}"
            yield shard, put(self.work_dir, name, part)


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


def _texts(layout: ShardLayout, rows: np.ndarray, columns: list[str]) -> dict[int, dict]:
    """Id columns of the given rows, read shard by shard: {row id: {column: value}}."""
    found = {}
    shard_of = layout.shard_of(rows)
    for shard in np.unique(shard_of):
        wanted = rows[shard_of == shard]
        table = layout.read_ids(shard, columns).take(wanted - layout.starts[shard])
        for row, values in zip(wanted.tolist(), table.to_pylist(), strict=True):
            found[row] = values
    return found


def sample_rows(edges: Edges, src: ShardLayout, tgt: ShardLayout) -> list[dict]:
    """The sample pairs with their texts, best first."""
    edges = edges.take(best_first(edges))
    src_text = _texts(src, edges.src, ["text"])
    tgt_text = _texts(tgt, edges.tgt, ["text"])
    return [
        {
            "score": round(float(score), 4),
            "src_text": src_text[s]["text"],
            "tgt_text": tgt_text[t]["text"],
        }
        for s, t, score in zip(edges.src.tolist(), edges.tgt.tolist(), edges.score, strict=True)
    ]


class AttachSource(beam.DoFn):
    """Pairs of one source shard get their source text, URL and hash from that shard's id file;
    passed on by target shard as Arrow tables."""

    def __init__(self, src: ShardLayout, tgt: ShardLayout, work_dir: str):
        self.src, self.tgt, self.work_dir = src, tgt, work_dir

    def process(self, keyed):
        shard, paths = keyed
        edges = Edges.concat([get(path) for path in paths])
        ids = self.src.read_ids(shard, ["hash", "text", "url"])
        ids = ids.take(edges.src - self.src.starts[shard])
        target_shard = self.tgt.shard_of(edges.tgt)
        for number in np.unique(target_shard):
            rows = target_shard == number
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
            name = f"attached/tgt{number:05d}-from-src{shard:05d}"
            yield int(number), put(self.work_dir, name, table)


class AttachTarget(beam.DoFn):
    """Pairs of one target shard get their target side; pairs whose two sides are the same text
    are dropped (counted). Writes the bitext rows plus the ordering columns; sends their scores
    to the `scores` output (for the part boundaries)."""

    def __init__(self, tgt: ShardLayout, src_lang: str, work_dir: str, namespace: str):
        self.tgt, self.src_lang, self.work_dir = tgt, src_lang, work_dir
        self.namespace = namespace

    def process(self, keyed):
        shard, paths = keyed
        table = pa.concat_tables([get(path) for path in paths])
        local = table.column("tgt_row").to_numpy() - self.tgt.starts[shard]
        ids = self.tgt.read_ids(shard, ["hash", "text", "url"]).take(local)
        identical = np.array(
            [
                same_text(a, b)
                for a, b in zip(
                    table.column("src_text").to_pylist(),
                    ids.column("text").to_pylist(),
                    strict=True,
                )
            ],
            dtype=bool,
        )
        _count(self.namespace, "dropped:identical_text", identical.sum())
        _count(self.namespace, "kept", (~identical).sum())
        keep = pa.array(~identical)
        rows = len(table)
        kept = pa.table(
            {
                "src_lang": pa.array([self.src_lang] * rows, pa.string()),
                "tgt_lang": pa.array([self.tgt.lang] * rows, pa.string()),
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
            yield beam.pvalue.TaggedOutput("scores", kept.column("score").to_numpy().tolist())
            yield put(self.work_dir, f"rows/tgt{shard:05d}", kept)


def part_boundaries(quantiles: list[float], count: int) -> np.ndarray:
    """Ascending score boundaries cutting `count` pairs into parts of about ROWS_PER_PART."""
    if not quantiles:
        return np.zeros(0, np.float32)
    parts = min(max(1, math.ceil(count / ROWS_PER_PART)), len(quantiles) - 1)
    at = [round(i * (len(quantiles) - 1) / parts) for i in range(1, parts)]
    cuts = np.unique(np.asarray(quantiles, np.float32)[at])
    return cuts[cuts > np.float32(quantiles[0])]  # every part gets at least one pair


def split_into_parts(path: str, quantiles: list[float], count: int, work_dir: str):
    """(part number, path of the rows of a table in that part); part 0 holds the best scores."""
    table = get(path)
    cuts = part_boundaries(quantiles, count)
    part = len(cuts) - np.searchsorted(cuts, table.column("score").to_numpy(), side="right")
    for number in np.unique(part):
        name = f"parts/part{number:05d}-from-{name_of(path)}"
        yield int(number), put(work_dir, name, table.filter(pa.array(part == number)))


class WritePart(beam.DoFn):
    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def process(self, keyed):
        number, paths = keyed
        table = pa.concat_tables([get(path) for path in paths])
        table = table.sort_by(ORDER).select(BITEXT_SCHEMA.names)
        path = FileSystems.join(self.out_dir, f"part-{number:05d}.parquet")
        write_table(table.cast(BITEXT_SCHEMA), path)
        yield path


def write_table(table: pa.Table, path: str) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    with FileSystems.create(path) as out:
        out.write(sink.getvalue().to_pybytes())


def score_range(path: str):
    edges = get(path)
    if len(edges):
        yield float(edges.score.min()), float(edges.score.max())


def widest(ranges) -> tuple[float, float] | None:
    """Combines (low, high) ranges (partial results included; None: nothing seen)."""
    ranges = [r for r in ranges if r is not None]
    if not ranges:
        return None
    return min(low for low, _ in ranges), max(high for _, high in ranges)


def block_histogram(path: str, bounds) -> np.ndarray:
    low, high = bounds or (0.0, 1.0)
    counts, _ = np.histogram(
        get(path).score, bins=HISTOGRAM_BINS, range=(np.float32(low), np.float32(high))
    )
    return counts


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


def build_assembly(pipeline, blocks, layouts, src, tgt, cuts, out_dir, work_dir, namespace):
    """Selected pair blocks (paths) to Parquet parts in out_dir; stats JSON files in work_dir;
    cuts = (threshold, max score, min cosine); counters in `namespace`."""
    selected = pipeline | "SelectedBlocks" >> beam.Create(blocks) | "Spread" >> beam.Reshuffle()
    bounds = beam.pvalue.AsSingleton(
        selected
        | "ScoreRanges" >> beam.FlatMap(score_range)
        | "Widest" >> beam.CombineGlobally(widest)
    )
    histogram_path = FileSystems.join(work_dir, "histogram.json")
    sample_path = FileSystems.join(work_dir, "sample.json")
    _ = (
        selected
        | "Histograms" >> beam.Map(block_histogram, bounds)
        | "SumHistograms" >> beam.CombineGlobally(sum_counts)
        | "HistogramJson" >> beam.Map(histogram_json, bounds)
        | "WriteHistogram" >> beam.Map(lambda h: write_json(histogram_path, h))
    )
    cut = selected | "ScoreCuts" >> beam.ParDo(
        ScoreCuts(*cuts, layouts[src], work_dir, namespace)
    ).with_outputs("below", main="kept")
    _ = (
        cut.below
        | "BestBelowThreshold" >> beam.CombineGlobally(BestEdges(SAMPLE_SIZE))
        | "SampleTexts" >> beam.Map(sample_rows, layouts[src], layouts[tgt])
        | "WriteSample" >> beam.Map(lambda s: write_json(sample_path, s))
    )
    rows = (
        cut.kept
        | "GroupBySource" >> beam.GroupByKey()
        | "AttachSource" >> beam.ParDo(AttachSource(layouts[src], layouts[tgt], work_dir))
        | "GroupByTarget" >> beam.GroupByKey()
        | "AttachTarget"
        >> beam.ParDo(AttachTarget(layouts[tgt], src, work_dir, namespace)).with_outputs(
            "scores", main="tables"
        )
    )
    quantiles = beam.pvalue.AsSingleton(
        rows.scores
        | "Quantiles" >> beam.ApproximateQuantiles.Globally(QUANTILES, input_batched=True)
    )
    count = beam.pvalue.AsSingleton(
        rows.scores | "Rows" >> beam.Map(len) | "CountRows" >> beam.CombineGlobally(sum)
    )
    _ = (
        rows.tables
        | "SplitIntoParts" >> beam.FlatMap(split_into_parts, quantiles, count, work_dir)
        | "GroupParts" >> beam.GroupByKey()
        | "WriteParts" >> beam.ParDo(WritePart(out_dir))
    )

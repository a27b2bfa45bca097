"""Pair selection by mode as keyed Beam steps; the selected pairs are written as .npz blocks.

forward / backward: each source's (target's) best candidate, as found. intersect and union: a
join on the target shard keeps the forward pairs that are also their target's best (intersect),
or both directions' pairs with those found twice kept once (union). max: the greedy
one-to-one matching by rounds (mining/matching.py), each round a step keyed by source shard and
one keyed by target shard. A pipeline unrolls `rounds` rounds; edges still undecided after them
are written out per source shard (the sources matched in the last round already removed), and
the driver continues from them with another pipeline, up to its bound on rounds.

Blocks go between steps as work files (pipelines/work_files.py); elements are (key, path).
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from mining.embedding_store import ShardLayout
from mining.matching import (
    Edges,
    accept_round,
    best_per_vertex,
    drop_matched_sources,
    intersect,
    union,
)
from pipelines.work_files import get, name_of, put


def list_blocks(directory: str) -> list[str]:
    pattern = FileSystems.join(directory, "*.pkl")
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def save_selected(edges: Edges, directory: str, name: str) -> None:
    """A block of selected pairs (or of undecided ones), unless it is empty."""
    if len(edges):
        put(directory, name, edges)


def split_by_shard(edges: Edges, layout: ShardLayout, side: str):
    """(shard, the edges whose `side` row lies in it) for each shard they touch."""
    shard = layout.shard_of(getattr(edges, side))
    for number in np.unique(shard):
        yield int(number), edges.take(shard == number)


class SplitBySource(beam.DoFn):
    """A block of edges, re-keyed by source shard: (source shard, path of its part)."""

    def __init__(self, src: ShardLayout, work_dir: str, prefix: str):
        self.src, self.work_dir, self.prefix = src, work_dir, prefix

    def process(self, path: str):
        for shard, part in split_by_shard(get(path), self.src, "src"):
            name = f"{self.prefix}/src{shard:05d}-from-{name_of(path)}"
            yield shard, put(self.work_dir, name, part)


def unmatched_edges(grouped) -> Edges:
    """A source shard's remaining edges, less those whose source the last round matched."""
    edges = Edges.concat([get(path) for path in grouped["edges"]])
    matched = [get(path) for path in grouped["matched"]]
    return drop_matched_sources(edges, np.concatenate(matched)) if matched else edges


class SourceSide(beam.DoFn):
    """First half of a round, on one source shard: drop edges whose source was matched in the
    previous round, mark each source's best edge, pass the edges on by target shard."""

    def __init__(self, tgt: ShardLayout, work_dir: str, round_number: int):
        self.tgt, self.work_dir, self.round_number = tgt, work_dir, round_number

    def process(self, joined):
        shard, grouped = joined
        edges = unmatched_edges(grouped)
        best = best_per_vertex(edges, "src")
        target = self.tgt.shard_of(edges.tgt)
        for number in np.unique(target):
            rows = target == number
            name = f"round{self.round_number:03d}/marked-tgt{number:05d}-from-src{shard:05d}"
            yield int(number), put(self.work_dir, name, (edges.take(rows), best[rows]))


class TargetSide(beam.DoFn):
    """Second half of a round, on one target shard (all remaining edges of its targets): accept
    the edges that are best of both ends (written as selected), drop the others touching an
    accepted sentence, and send the rest and the accepted sources back by source shard."""

    def __init__(
        self,
        src: ShardLayout,
        work_dir: str,
        selected_dir: str,
        round_number: int,
        namespace: str,
    ):
        self.src, self.work_dir, self.selected_dir = src, work_dir, selected_dir
        self.round_number, self.namespace = round_number, namespace

    def process(self, keyed):
        shard, paths = keyed
        marked = [get(path) for path in paths]
        edges = Edges.concat([e for e, _ in marked])
        best_of_source = np.concatenate([m for _, m in marked])
        accepted, remaining = accept_round(edges, best_of_source)
        counter = f"accepted_in_round:{self.round_number:03d}"
        Metrics.counter(self.namespace, counter).inc(len(accepted))
        save_selected(accepted, self.selected_dir, f"round{self.round_number:03d}-tgt{shard:05d}")
        prefix = f"round{self.round_number:03d}"
        for number, part in split_by_shard(accepted, self.src, "src"):
            name = f"{prefix}/matched-src{number:05d}-from-tgt{shard:05d}"
            yield beam.pvalue.TaggedOutput("matched", (number, put(self.work_dir, name, part.src)))
        for number, part in split_by_shard(remaining, self.src, "src"):
            name = f"{prefix}/remaining-src{number:05d}-from-tgt{shard:05d}"
            yield number, put(self.work_dir, name, part)


class SaveUndecided(beam.DoFn):
    """After the last round of a pipeline: the undecided edges of a source shard, less those whose
    source the last round matched, written for the next pipeline."""

    def __init__(self, undecided_dir: str, namespace: str):
        self.undecided_dir, self.namespace = undecided_dir, namespace

    def process(self, joined):
        shard, grouped = joined
        edges = unmatched_edges(grouped)
        Metrics.counter(self.namespace, "undecided_after_pipeline").inc(len(edges))
        save_selected(edges, self.undecided_dir, f"src{shard:05d}")
        yield shard


def build_rounds(by_source, src_layout, tgt_layout, first_round, rounds, dirs, namespace):
    """`rounds` rounds of the greedy matching on (source shard, path of edges) elements;
    counters in `namespace`."""
    work, selected, undecided = dirs
    matched = by_source.pipeline | f"NoneMatchedBefore{first_round}" >> beam.Create([])
    for number in range(first_round, first_round + rounds):
        step = (
            {"edges": by_source, "matched": matched}
            | f"BySource{number}" >> beam.CoGroupByKey()
            | f"SourceSide{number}" >> beam.ParDo(SourceSide(tgt_layout, work, number))
            | f"ByTarget{number}" >> beam.GroupByKey()
            | f"TargetSide{number}"
            >> beam.ParDo(TargetSide(src_layout, work, selected, number, namespace)).with_outputs(
                "matched", main="remaining"
            )
        )
        by_source, matched = step.remaining, step.matched
    _ = (
        {"edges": by_source, "matched": matched}
        | "LastBySource" >> beam.CoGroupByKey()
        | "SaveUndecided" >> beam.ParDo(SaveUndecided(undecided, namespace))
    )


def of_language(keyed, lang: str) -> bool:
    (query_lang, _shard), _path = keyed
    return query_lang == lang


class SplitByTarget(beam.DoFn):
    """A forward block re-keyed by target shard, for the join of intersect and union."""

    def __init__(self, tgt: ShardLayout, work_dir: str):
        self.tgt, self.work_dir = tgt, work_dir

    def process(self, path: str):
        for shard, part in split_by_shard(get(path), self.tgt, "tgt"):
            name = f"by-target/tgt{shard:05d}-from-{name_of(path)}"
            yield shard, put(self.work_dir, name, part)


JOINED = {"intersect": intersect, "union": union}


def join_shard(keyed, mode: str, selected_dir: str) -> None:
    """intersect or union of one target shard's forward and backward pairs."""
    shard, grouped = keyed
    forward = Edges.concat([get(path) for path in grouped["forward"]])
    backward = Edges.concat([get(path) for path in grouped["backward"]])
    save_selected(JOINED[mode](forward, backward), selected_dir, f"{mode}-{shard:05d}")


def save_direction(keyed, mode: str, selected_dir: str) -> None:
    (_lang, shard), path = keyed
    save_selected(get(path), selected_dir, f"{mode}-{shard:05d}")


def build_selection(best, mode, layouts, src, tgt, rounds, dirs, namespace):
    """Select pairs from the best-candidate blocks ((query lang, shard), path) by `mode`;
    dirs = (work, selected, undecided) directories; counters in `namespace`."""
    work, selected, _undecided = dirs
    if mode in ("forward", "backward"):
        _ = (
            best
            | "OneDirection" >> beam.Filter(of_language, src if mode == "forward" else tgt)
            | "SaveSelected" >> beam.Map(save_direction, mode, selected)
        )
    elif mode in JOINED:
        forward = (
            best
            | "Forward" >> beam.Filter(of_language, src)
            | "ForwardBlocks" >> beam.Values()
            | "ForwardByTarget" >> beam.ParDo(SplitByTarget(layouts[tgt], work))
        )
        backward = (
            best
            | "Backward" >> beam.Filter(of_language, tgt)
            | "BackwardByTarget" >> beam.MapTuple(lambda key, path: (key[1], path))
        )
        _ = (
            {"forward": forward, "backward": backward}
            | "JoinOnTarget" >> beam.CoGroupByKey()
            | "Combine" >> beam.Map(join_shard, mode, selected)
        )
    elif mode == "max":
        by_source = (
            best
            | "Blocks" >> beam.Values()
            | "PooledBySource" >> beam.ParDo(SplitBySource(layouts[src], work, "pooled"))
        )
        build_rounds(by_source, layouts[src], layouts[tgt], 1, rounds, dirs, namespace)
    else:
        raise ValueError(f"unknown mode {mode!r}")


def build_continuation(
    pipeline, undecided_blocks, layouts, src, tgt, first_round, rounds, dirs, namespace
):
    """More rounds of the greedy matching, from the undecided blocks a pipeline wrote (one per
    source shard, named src{shard})."""
    by_source = (
        pipeline
        | "Undecided" >> beam.Create(undecided_blocks)
        | "BySourceShard" >> beam.Map(lambda path: (int(name_of(path)[len("src") :]), path))
    )
    build_rounds(by_source, layouts[src], layouts[tgt], first_round, rounds, dirs, namespace)

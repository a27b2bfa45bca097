"""Pair selection by mode as keyed Beam steps; the selected pairs are written as .npz blocks.

forward / backward: each source's (target's) best candidate, as found. intersect: a join on the
target shard keeps the forward pairs that are also their target's best. max: the greedy
one-to-one matching by rounds (mining/matching.py), each round a step keyed by source shard and
one keyed by target shard. A pipeline unrolls `rounds` rounds; edges still undecided after them
are written out (with the sources matched in the last round already removed), and the driver
continues from them with another pipeline, up to its bound on rounds.

Blocks get names derived from their keys, so a retried bundle overwrites rather than adds.
"""

from __future__ import annotations

import io

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from mining.embedding_store import ShardLayout
from mining.matching import (
    FIELDS,
    Edges,
    accept_round,
    best_per_vertex,
    drop_matched_sources,
    intersect,
)

NAMESPACE = "mine"


def write_edges(edges: Edges, path: str) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: getattr(edges, name) for name in FIELDS})
    with FileSystems.create(path) as out:
        out.write(buffer.getvalue())


def read_edges(path: str) -> Edges:
    with FileSystems.open(path) as stream:
        arrays = np.load(io.BytesIO(stream.read()))
        return Edges(*(arrays[name] for name in FIELDS))


def list_blocks(directory: str) -> list[str]:
    pattern = FileSystems.join(directory, "*.npz")
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


class WriteEdges(beam.DoFn):
    """(name, Edges) to DIRECTORY/name.npz; empty blocks are not written."""

    def __init__(self, directory: str):
        self.directory = directory

    def process(self, named):
        name, edges = named
        if len(edges):
            path = FileSystems.join(self.directory, f"{name}.npz")
            write_edges(edges, path)
            yield path


def split_by_shard(edges: Edges, layout: ShardLayout, side: str):
    """(shard, the edges whose `side` row lies in it) for each shard they touch."""
    shard = layout.shard_of(getattr(edges, side))
    for number in np.unique(shard):
        yield int(number), edges.take(shard == number)


class SourceSide(beam.DoFn):
    """First half of a round, on one source shard: drop edges whose source was matched in the
    previous round, mark each source's best edge, pass the edges on by target shard."""

    def __init__(self, tgt: ShardLayout):
        self.tgt = tgt

    def process(self, joined):
        _shard, grouped = joined
        edges = Edges.concat(list(grouped["edges"]))
        matched = list(grouped["matched"])
        if matched:
            edges = drop_matched_sources(edges, np.concatenate(matched))
        best = best_per_vertex(edges, "src")
        shard = self.tgt.shard_of(edges.tgt)
        for number in np.unique(shard):
            rows = shard == number
            yield int(number), (edges.take(rows), best[rows])


class TargetSide(beam.DoFn):
    """Second half of a round, on one target shard (all remaining edges of its targets): accept
    the edges that are best of both ends, drop the others touching an accepted sentence, and
    send the rest and the accepted sources back by source shard."""

    def __init__(self, src: ShardLayout, round_number: int):
        self.src = src
        self.round_number = round_number

    def process(self, keyed):
        shard, marked = keyed
        marked = list(marked)
        edges = Edges.concat([e for e, _ in marked])
        best_of_source = np.concatenate([m for _, m in marked])
        accepted, remaining = accept_round(edges, best_of_source)
        Metrics.counter(NAMESPACE, f"accepted_in_round:{self.round_number:03d}").inc(len(accepted))
        name = f"round{self.round_number:03d}-tgt{shard:05d}"
        yield beam.pvalue.TaggedOutput("accepted", (name, accepted))
        for number, part in split_by_shard(accepted, self.src, "src"):
            yield beam.pvalue.TaggedOutput("matched", (number, part.src))
        yield from split_by_shard(remaining, self.src, "src")


class DropMatched(beam.DoFn):
    """After the last round of a pipeline: the undecided edges of a source shard, less those whose
    source the last round matched."""

    def process(self, joined):
        shard, grouped = joined
        edges = Edges.concat(list(grouped["edges"]))
        matched = list(grouped["matched"])
        if matched:
            edges = drop_matched_sources(edges, np.concatenate(matched))
        Metrics.counter(NAMESPACE, "undecided_after_pipeline").inc(len(edges))
        yield f"src{shard:05d}", edges


def build_rounds(by_source, layouts, src, tgt, first_round, rounds, selected_dir, leftover_dir):
    """`rounds` rounds of the greedy matching on edges keyed by source shard."""
    pipeline = by_source.pipeline
    matched = pipeline | f"NoneMatchedBefore{first_round}" >> beam.Create([])
    for number in range(first_round, first_round + rounds):
        step = (
            {"edges": by_source, "matched": matched}
            | f"BySource{number}" >> beam.CoGroupByKey()
            | f"SourceSide{number}" >> beam.ParDo(SourceSide(layouts[tgt]))
            | f"ByTarget{number}" >> beam.GroupByKey()
            | f"TargetSide{number}"
            >> beam.ParDo(TargetSide(layouts[src], number)).with_outputs(
                "accepted", "matched", main="remaining"
            )
        )
        _ = step.accepted | f"WriteAccepted{number}" >> beam.ParDo(WriteEdges(selected_dir))
        by_source, matched = step.remaining, step.matched
    _ = (
        {"edges": by_source, "matched": matched}
        | "LastBySource" >> beam.CoGroupByKey()
        | "DropMatched" >> beam.ParDo(DropMatched())
        | "WriteUndecided" >> beam.ParDo(WriteEdges(leftover_dir))
    )


def key_by_source(edges, layouts, src, label):
    return edges | label >> beam.FlatMap(split_by_shard, layouts[src], "src")


def of_language(keyed, lang: str) -> bool:
    (query_lang, _shard), _edges = keyed
    return query_lang == lang


def intersect_shard(shard: int, grouped) -> tuple[str, Edges]:
    forward = Edges.concat(list(grouped["forward"]))
    backward = Edges.concat(list(grouped["backward"]))
    return f"intersect-{shard:05d}", intersect(forward, backward)


def build_selection(best, mode, layouts, src, tgt, rounds, selected_dir, leftover_dir):
    """Select pairs from the best-candidate blocks ((query lang, shard), Edges) by `mode`."""
    if mode in ("forward", "backward"):
        _ = (
            best
            | "OneDirection" >> beam.Filter(of_language, src if mode == "forward" else tgt)
            | "Name" >> beam.MapTuple(lambda key, edges: (f"{mode}-{key[1]:05d}", edges))
            | "WriteSelected" >> beam.ParDo(WriteEdges(selected_dir))
        )
    elif mode == "intersect":
        forward = (
            best
            | "Forward" >> beam.Filter(of_language, src)
            | "ForwardBlocks" >> beam.Values()
            | "ForwardByTarget" >> beam.FlatMap(split_by_shard, layouts[tgt], "tgt")
        )
        backward = (
            best
            | "Backward" >> beam.Filter(of_language, tgt)
            | "BackwardByTarget" >> beam.MapTuple(lambda key, edges: (key[1], edges))
        )
        _ = (
            {"forward": forward, "backward": backward}
            | "JoinOnTarget" >> beam.CoGroupByKey()
            | "Intersect" >> beam.MapTuple(intersect_shard)
            | "WriteSelected" >> beam.ParDo(WriteEdges(selected_dir))
        )
    elif mode == "max":
        pooled = best | "Blocks" >> beam.Values()
        by_source = key_by_source(pooled, layouts, src, "PooledBySource")
        build_rounds(by_source, layouts, src, tgt, 1, rounds, selected_dir, leftover_dir)
    else:
        raise ValueError(f"unknown mode {mode!r}")


def build_continuation(
    pipeline, leftovers, layouts, src, tgt, first_round, rounds, selected_dir, leftover_dir
):
    """More rounds of the greedy matching, from the undecided edges a pipeline wrote."""
    edges = (
        pipeline
        | "Undecided" >> beam.Create(leftovers)
        | "SpreadUndecided" >> beam.Reshuffle()
        | "ReadUndecided" >> beam.Map(read_edges)
    )
    by_source = key_by_source(edges, layouts, src, "UndecidedBySource")
    build_rounds(by_source, layouts, src, tgt, first_round, rounds, selected_dir, leftover_dir)

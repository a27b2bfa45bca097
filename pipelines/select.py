"""Pair selection by mode as keyed Beam steps; the selected pairs are written as blocks.

forward / backward: each source's (target's) best candidate, as found. intersect and union: a
join on the group of target shards keeps the forward pairs that are also their target's best
(intersect), or both directions' pairs with those found twice kept once (union). max: the greedy
one-to-one matching by rounds (mining/matching.py), each round a step keyed by group of source
shards and one keyed by group of target shards (pipelines/pair_context.py: `shard_groups`). A
pipeline unrolls `rounds` rounds; edges still undecided after them are written out per source
group (the sources matched in the last round already removed), and the driver continues from
them with another pipeline, up to its bound on rounds.

All pairs of a job share these steps: every key starts with the pair's name
(pipelines/pair_context.py). The pairs of a job have run the same rounds, so each round is one
step for all of them.

Blocks go between steps as work files (pipelines/work_files.py); elements are (key, path).
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from mining.inputs import matching_paths
from mining.matching import (
    Edges,
    accept_round,
    best_per_vertex,
    drop_matched_sources,
    intersect,
    union,
)
from pipelines.pair_context import PairContext, job_pairs
from pipelines.work_files import get, name_of, put


def list_blocks(directory: str) -> list[str]:
    pattern = FileSystems.join(directory, "*.pkl")
    return matching_paths(pattern)


def save_selected(edges: Edges, directory: str, name: str) -> None:
    """A block of selected pairs (or of undecided ones), unless it is empty."""
    if len(edges):
        put(directory, name, edges)


def split_edges(edges: Edges, keys: np.ndarray):
    """(key, the edges of that key) for each key, given one per edge (a shard or group number)."""
    for key in np.unique(keys):
        yield int(key), edges.take(keys == key)


def split_by_group(edges: Edges, pair: PairContext, side: str):
    """(group, the edges whose `side` ("src" or "tgt") row lies in its shards) for each group of
    shards they touch."""
    return split_edges(edges, pair.group_of(getattr(pair, side), getattr(edges, side)))


class SplitByGroup(beam.DoFn):
    """A pair's block of edges, re-keyed by the group of shards of their `side` ("src" or
    "tgt"): ((pair, group), path of its part)."""

    def __init__(self, job: str, side: str, prefix: str):
        self.job, self.side, self.prefix = job, side, prefix

    def process(self, named):
        name, path = named
        pair = job_pairs(self.job)[name]
        for group, part in split_by_group(get(path), pair, self.side):
            block_name = f"{self.prefix}/{self.side}{group:05d}-from-{name_of(path)}"
            yield (name, group), put(pair.work, block_name, part)


def unmatched_edges(grouped) -> Edges:
    """A source group's remaining edges, less those whose source the last round matched."""
    edges = Edges.concat([get(path) for path in grouped["edges"]])
    matched = [get(path) for path in grouped["matched"]]
    return drop_matched_sources(edges, np.concatenate(matched)) if matched else edges


class SourceSide(beam.DoFn):
    """First half of a round, on one group of source shards: drop edges whose source was matched
    in the previous round, mark each source's best edge, pass the edges on by target group."""

    def __init__(self, job: str, round_number: int):
        self.job, self.round_number = job, round_number

    def process(self, joined):
        (name, group), grouped = joined
        pair = job_pairs(self.job)[name]
        edges = unmatched_edges(grouped)
        best = best_per_vertex(edges, "src")
        target = pair.group_of(pair.tgt, edges.tgt)
        for number in np.unique(target):
            rows = target == number
            block_name = f"round{self.round_number:03d}/marked-tgt{number:05d}-from-src{group:05d}"
            yield (name, int(number)), put(pair.work, block_name, (edges.take(rows), best[rows]))


class TargetSide(beam.DoFn):
    """Second half of a round, on one group of target shards (all remaining edges of its
    targets): accept the edges that are best of both ends (written as selected), drop the others
    touching an accepted sentence, and send the rest and the accepted sources back by source
    group."""

    def __init__(self, job: str, round_number: int):
        self.job, self.round_number = job, round_number

    def process(self, keyed):
        (name, group), paths = keyed
        pair = job_pairs(self.job)[name]
        marked = [get(path) for path in paths]
        edges = Edges.concat([e for e, _ in marked])
        best_of_source = np.concatenate([m for _, m in marked])
        accepted, remaining = accept_round(edges, best_of_source)
        counter = f"accepted_in_round:{self.round_number:03d}"
        Metrics.counter(pair.namespace, counter).inc(len(accepted))
        prefix = f"round{self.round_number:03d}"
        save_selected(accepted, pair.selected, f"{prefix}-tgt{group:05d}")
        for number, part in split_by_group(accepted, pair, "src"):
            block = put(
                pair.work, f"{prefix}/matched-src{number:05d}-from-tgt{group:05d}", part.src
            )
            yield beam.pvalue.TaggedOutput("matched", ((name, number), block))
        for number, part in split_by_group(remaining, pair, "src"):
            block_name = f"{prefix}/remaining-src{number:05d}-from-tgt{group:05d}"
            yield (name, number), put(pair.work, block_name, part)


class SaveUndecided(beam.DoFn):
    """After the last round of a pipeline: the undecided edges of a source group, less those whose
    source the last round matched, written for the next pipeline."""

    def __init__(self, job: str, rounds: int):
        self.job, self.rounds = job, rounds

    def process(self, joined):
        (name, group), grouped = joined
        pair = job_pairs(self.job)[name]
        edges = unmatched_edges(grouped)
        Metrics.counter(pair.namespace, "undecided_after_pipeline").inc(len(edges))
        save_selected(edges, pair.undecided(self.rounds), f"src{group:05d}")
        yield group


def build_rounds(by_source, job, first_round, rounds):
    """`rounds` rounds of the greedy matching on ((pair, source group), path of edges)
    elements."""
    matched = by_source.pipeline | f"NoneMatchedBefore{first_round}" >> beam.Create([])
    for number in range(first_round, first_round + rounds):
        step = (
            {"edges": by_source, "matched": matched}
            | f"BySource{number}" >> beam.CoGroupByKey()
            | f"SourceSide{number}" >> beam.ParDo(SourceSide(job, number))
            | f"ByTarget{number}" >> beam.GroupByKey()
            | f"TargetSide{number}"
            >> beam.ParDo(TargetSide(job, number)).with_outputs("matched", main="remaining")
        )
        by_source, matched = step.remaining, step.matched
    last = first_round + rounds - 1
    _ = (
        {"edges": by_source, "matched": matched}
        | "LastBySource" >> beam.CoGroupByKey()
        | "SaveUndecided" >> beam.ParDo(SaveUndecided(job, last))
    )


def of_language(keyed, side: str, job: str) -> bool:
    """Whether a best-candidate block's queries are its pair's `side` ("src" or "tgt")."""
    (name, query_lang, _shard), _path = keyed
    return query_lang == getattr(job_pairs(job)[name], side)


def named_block(keyed):
    """((pair, query language, shard), path) -> (pair, path)."""
    (name, _lang, _shard), path = keyed
    return name, path


JOINED = {"intersect": intersect, "union": union}


def join_group(keyed, mode: str, job: str) -> None:
    """intersect or union of one target group's forward and backward pairs."""
    (name, group), grouped = keyed
    forward = Edges.concat([get(path) for path in grouped["forward"]])
    backward = Edges.concat([get(path) for path in grouped["backward"]])
    selected = job_pairs(job)[name].selected
    save_selected(JOINED[mode](forward, backward), selected, f"{mode}-{group:05d}")


def save_direction(keyed, mode: str, job: str) -> None:
    (name, _lang, shard), path = keyed
    save_selected(get(path), job_pairs(job)[name].selected, f"{mode}-{shard:05d}")


def by_pair_and_group(keyed, job: str):
    """((pair, query language, shard), path) -> ((pair, the shard's group), path)."""
    (name, lang, shard), path = keyed
    return (name, job_pairs(job)[name].shard_group(lang, shard)), path


def build_selection(best, mode, job, rounds):
    """Select every pair's pairs from its best-candidate blocks ((pair, query lang, shard),
    path) by `mode`; max mode runs `rounds` rounds; `job`: the path of the job's MineJob."""
    if mode in ("forward", "backward"):
        _ = (
            best
            | "OneDirection" >> beam.Filter(of_language, "src" if mode == "forward" else "tgt", job)
            | "SaveSelected" >> beam.Map(save_direction, mode, job)
        )
    elif mode in JOINED:
        forward = (
            best
            | "Forward" >> beam.Filter(of_language, "src", job)
            | "ForwardBlocks" >> beam.Map(named_block)
            | "ForwardByTarget" >> beam.ParDo(SplitByGroup(job, "tgt", "by-target"))
        )
        backward = (
            best
            | "Backward" >> beam.Filter(of_language, "tgt", job)
            | "BackwardByTarget" >> beam.Map(by_pair_and_group, job)
        )
        _ = (
            {"forward": forward, "backward": backward}
            | "JoinOnTarget" >> beam.CoGroupByKey()
            | "Combine" >> beam.Map(join_group, mode, job)
        )
    elif mode == "max":
        by_source = (
            best
            | "Blocks" >> beam.Map(named_block)
            | "PooledBySource" >> beam.ParDo(SplitByGroup(job, "src", "pooled"))
        )
        build_rounds(by_source, job, 1, rounds)
    else:
        raise ValueError(f"unknown mode {mode!r}")


def undecided_blocks(name: str, first_round: int, job: str) -> list:
    """The undecided blocks the pair's last job left, one per source group (named src{group}):
    ((pair, group), path)."""
    directory = job_pairs(job)[name].undecided(first_round - 1)
    return [((name, int(name_of(path)[len("src") :])), path) for path in list_blocks(directory)]


def build_continuation(pipeline, job, first_round, rounds):
    """More rounds of the greedy matching for every pair of the job, from the undecided blocks
    its last pipeline wrote (listed by a worker)."""
    by_source = (
        pipeline
        | "Pairs" >> beam.Create(sorted(job_pairs(job)))
        | "Undecided" >> beam.FlatMap(undecided_blocks, first_round, job)
    )
    build_rounds(by_source, job, first_round, rounds)

"""One-to-one pair selection (LASER's `max` mode) by rounds of locally dominant edges.

The sequential greedy matching takes candidate pairs best first and keeps a pair when neither
sentence is used yet. Under a strict total order the same matching comes out of rounds: every
edge that is the best remaining edge of both its source and its target is accepted (the
sequential greedy would accept it: nothing better touches either end), and all other edges
touching an accepted sentence are removed (the greedy would reject them). Each round accepts at
least the best remaining edge, and each needs only per-sentence minima, so a round is two keyed
steps (by source, then by target) that run in parallel.

The total order: score descending, then forward candidates (a source's best) before backward
ones (a target's best), then the query's row id. That is the order in which `margin.combine`
walks the pooled candidates, so both give the same pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORWARD, BACKWARD = 0, 1
# A bound on rounds: real candidate sets need 3 or 4 (README, "Scaling out"); a decreasing chain
# of 2n pairs needs n.
MAX_ROUNDS = 200


@dataclass
class Edges:
    """Candidate pairs: source and target row ids, margin score, cosine, and the direction of the
    search that proposed them (FORWARD: the source's best target; BACKWARD: the target's)."""

    src: np.ndarray
    tgt: np.ndarray
    score: np.ndarray
    cos: np.ndarray
    direction: np.ndarray

    def __len__(self) -> int:
        return len(self.src)

    @property
    def query(self) -> np.ndarray:
        return np.where(self.direction == FORWARD, self.src, self.tgt)

    def take(self, rows) -> Edges:
        return Edges(*(getattr(self, name)[rows] for name in FIELDS))

    @classmethod
    def concat(cls, parts: list[Edges]) -> Edges:
        if not parts:
            return empty_edges()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in FIELDS))


FIELDS = ("src", "tgt", "score", "cos", "direction")


def empty_edges() -> Edges:
    return Edges(*(np.zeros(0, t) for t in (np.int64, np.int64, np.float32, np.float32, np.int8)))


def best_first(edges: Edges) -> np.ndarray:
    """Positions of the edges in the total order, best first."""
    return np.lexsort((edges.query, edges.direction, -edges.score))


def best_per_vertex(edges: Edges, side: str) -> np.ndarray:
    """Boolean mask: the edges that are the best (in the total order) among those sharing their
    sentence on `side` ("src" or "tgt")."""
    vertex = getattr(edges, side)
    order = np.lexsort((edges.query, edges.direction, -edges.score, vertex))
    first = np.ones(len(order), dtype=bool)
    first[1:] = vertex[order][1:] != vertex[order][:-1]
    mask = np.zeros(len(order), dtype=bool)
    mask[order[first]] = True
    return mask


def drop_matched_sources(edges: Edges, matched_src: np.ndarray) -> Edges:
    """Remove edges whose source an accepted edge has used."""
    if not len(matched_src):
        return edges
    return edges.take(~np.isin(edges.src, matched_src))


def accept_round(edges: Edges, best_of_source: np.ndarray) -> tuple[Edges, Edges]:
    """The target side of a round, on all remaining edges of some targets: accept the edges that
    are best of both ends; return (accepted, remaining) where remaining lacks every edge that
    touches an accepted target or (within these edges) an accepted source."""
    accepted = best_of_source & best_per_vertex(edges, "tgt")
    done_tgt, done_src = edges.tgt[accepted], edges.src[accepted]
    remaining = ~accepted & ~np.isin(edges.tgt, done_tgt) & ~np.isin(edges.src, done_src)
    return edges.take(accepted), edges.take(remaining)


def also_in(edges, other, side: str) -> np.ndarray:
    """Mask of `edges` that are also edges of `other`, which holds at most one edge per sentence
    on `side` ("src" or "tgt"); both are Edges or margin.Pairs."""
    if not len(edges.src) or not len(other.src):
        return np.zeros(len(edges.src), dtype=bool)
    far = "tgt" if side == "src" else "src"
    order = np.argsort(getattr(other, side), kind="stable")
    near_ends, far_ends = getattr(other, side)[order], getattr(other, far)[order]
    at = np.minimum(np.searchsorted(near_ends, getattr(edges, side)), len(order) - 1)
    return (near_ends[at] == getattr(edges, side)) & (far_ends[at] == getattr(edges, far))


def intersect(forward: Edges, backward: Edges) -> Edges:
    """The forward edges (each source's best target) whose target has their source as its best
    (backward); `backward` holds at most one edge per target."""
    return forward.take(also_in(forward, backward, "tgt"))


def union(forward: Edges, backward: Edges) -> Edges:
    """Forward and backward edges together, a pair found by both kept once (as forward);
    `forward` holds at most one edge per source."""
    return Edges.concat([forward, backward.take(~also_in(backward, forward, "src"))])


def greedy_by_rounds(edges: Edges) -> tuple[Edges, int]:
    """The sequential greedy one-to-one matching computed by rounds in one process (what the
    Beam graph does across workers); returns (accepted edges best first, rounds)."""
    accepted, rounds = [], 0
    while len(edges):
        rounds += 1
        taken, edges = accept_round(edges, best_per_vertex(edges, "src"))
        accepted.append(taken)
        edges = drop_matched_sources(edges, taken.src)
    result = Edges.concat(accepted)
    return result.take(best_first(result)), rounds

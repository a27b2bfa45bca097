"""Margin-based scoring and pair selection (Artetxe & Schwenk 2019; LASER's mine_bitexts).

Given the k nearest neighbours in both directions, each candidate pair (x, y) with cosine c gets

    ratio:    c / ((mean_x + mean_y) / 2)
    distance: c - (mean_x + mean_y) / 2
    absolute: c

where mean_x is the mean cosine of x's k nearest targets and mean_y that of y's k nearest sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mining.matching import also_in

MARGINS = ("ratio", "distance", "absolute")
MODES = ("forward", "backward", "intersect", "max", "union")


def margin(cos: np.ndarray, mean_x: np.ndarray, mean_y: np.ndarray, kind: str) -> np.ndarray:
    if kind == "ratio":
        return cos / ((mean_x + mean_y) / 2)
    if kind == "distance":
        return cos - (mean_x + mean_y) / 2
    if kind == "absolute":
        return cos
    raise ValueError(f"unknown margin {kind!r}; one of {MARGINS}")


@dataclass
class Neighbours:
    """kNN results of one direction: sims and ids are (n_queries, k), best first."""

    sims: np.ndarray
    ids: np.ndarray

    @property
    def means(self) -> np.ndarray:
        return self.sims.mean(axis=1)


@dataclass
class Pairs:
    src: np.ndarray
    tgt: np.ndarray
    score: np.ndarray
    cos: np.ndarray


PAIR_FIELDS = ("src", "tgt", "score", "cos")


def candidate_scores(fwd: Neighbours, bwd: Neighbours, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Margin scores of every forward candidate (n_src, k) and backward candidate (n_tgt, k)."""
    mean_x, mean_y = fwd.means, bwd.means
    fwd_scores = margin(fwd.sims, mean_x[:, None], mean_y[fwd.ids], kind)
    bwd_scores = margin(bwd.sims, mean_x[bwd.ids], mean_y[:, None], kind)
    return fwd_scores, bwd_scores


def best_candidates(fwd: Neighbours, bwd: Neighbours, kind: str) -> tuple[Pairs, Pairs]:
    """Each source's best-scoring target (forward) and each target's best source (backward)."""
    fwd_scores, bwd_scores = candidate_scores(fwd, bwd, kind)
    rows_f, rows_b = np.arange(len(fwd.ids)), np.arange(len(bwd.ids))
    f_arg, b_arg = fwd_scores.argmax(axis=1), bwd_scores.argmax(axis=1)
    forward = Pairs(
        rows_f, fwd.ids[rows_f, f_arg], fwd_scores[rows_f, f_arg], fwd.sims[rows_f, f_arg]
    )
    backward = Pairs(
        bwd.ids[rows_b, b_arg], rows_b, bwd_scores[rows_b, b_arg], bwd.sims[rows_b, b_arg]
    )
    return forward, backward


def combine(forward: Pairs, backward: Pairs, mode: str = "max") -> Pairs:
    """Best candidates of both directions combined by `mode`, sorted by score (best first).

    forward: each source with its best target; backward: each target with its best source;
    intersect: pairs that are each other's best; max: both directions pooled, then kept one to
    one greedily by score (a sentence is used once); union: both directions pooled, a pair found
    in both kept once (stopes' `union`, NLLB's mining: a sentence may pair with several others,
    e.g. one sentence and two translations of it).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    if mode == "forward":
        chosen = forward
    elif mode == "backward":
        chosen = backward
    elif mode == "intersect":
        keep = also_in(forward, backward, "tgt")
        chosen = Pairs(*(getattr(forward, f)[keep] for f in PAIR_FIELDS))
    elif mode == "union":
        again = also_in(backward, forward, "src")
        chosen = Pairs(
            *(
                np.concatenate([getattr(forward, f), getattr(backward, f)[~again]])
                for f in PAIR_FIELDS
            )
        )
    else:
        chosen = _greedy_one_to_one(
            np.concatenate([forward.src, backward.src]),
            np.concatenate([forward.tgt, backward.tgt]),
            np.concatenate([forward.score, backward.score]),
            np.concatenate([forward.cos, backward.cos]),
        )
    order = np.argsort(-chosen.score, kind="stable")
    return Pairs(chosen.src[order], chosen.tgt[order], chosen.score[order], chosen.cos[order])


def best_per_query(query: np.ndarray, rank: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Positions of each query's best-scoring candidate (ties: the nearer neighbour, as argmax
    over the neighbour list would), in query order."""
    order = np.lexsort((rank, -score, query))
    _, first = np.unique(query[order], return_index=True)
    return order[first]


def select_pairs(fwd: Neighbours, bwd: Neighbours, kind: str = "ratio", mode: str = "max") -> Pairs:
    """Pairs from the kNN of both directions: margin scores, best candidates, `mode` (combine)."""
    return combine(*best_candidates(fwd, bwd, kind), mode)


def _greedy_one_to_one(src, tgt, score, cos):
    order = np.argsort(-score, kind="stable")
    used_src, used_tgt, keep = set(), set(), []
    for i in order:
        s, t = int(src[i]), int(tgt[i])
        if s in used_src or t in used_tgt:
            continue
        used_src.add(s)
        used_tgt.add(t)
        keep.append(i)
    keep = np.asarray(keep, dtype=np.int64)
    return Pairs(src[keep], tgt[keep], score[keep], cos[keep])

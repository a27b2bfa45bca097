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

MARGINS = ("ratio", "distance", "absolute")
MODES = ("forward", "backward", "intersect", "max")


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


def candidate_scores(fwd: Neighbours, bwd: Neighbours, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Margin scores of every forward candidate (n_src, k) and backward candidate (n_tgt, k)."""
    mean_x, mean_y = fwd.means, bwd.means
    fwd_scores = margin(fwd.sims, mean_x[:, None], mean_y[fwd.ids], kind)
    bwd_scores = margin(bwd.sims, mean_x[bwd.ids], mean_y[:, None], kind)
    return fwd_scores, bwd_scores


def select_pairs(fwd: Neighbours, bwd: Neighbours, kind: str = "ratio", mode: str = "max") -> Pairs:
    """The best candidate of each sentence, combined by `mode`, sorted by score (best first).

    forward: each source with its best target; backward: each target with its best source;
    intersect: pairs that are each other's best; max: both directions pooled, then kept one to
    one greedily by score (a sentence is used once).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    fwd_scores, bwd_scores = candidate_scores(fwd, bwd, kind)
    n_src, n_tgt = len(fwd.ids), len(bwd.ids)
    fwd_arg = fwd_scores.argmax(axis=1)
    bwd_arg = bwd_scores.argmax(axis=1)
    f_src, f_tgt = np.arange(n_src), fwd.ids[np.arange(n_src), fwd_arg]
    f_score, f_cos = fwd_scores[np.arange(n_src), fwd_arg], fwd.sims[np.arange(n_src), fwd_arg]
    b_src, b_tgt = bwd.ids[np.arange(n_tgt), bwd_arg], np.arange(n_tgt)
    b_score, b_cos = bwd_scores[np.arange(n_tgt), bwd_arg], bwd.sims[np.arange(n_tgt), bwd_arg]

    if mode == "forward":
        src, tgt, score, cos = f_src, f_tgt, f_score, f_cos
    elif mode == "backward":
        src, tgt, score, cos = b_src, b_tgt, b_score, b_cos
    elif mode == "intersect":
        keep = b_src[f_tgt] == f_src
        src, tgt, score, cos = f_src[keep], f_tgt[keep], f_score[keep], f_cos[keep]
    else:
        src, tgt, score, cos = _greedy_one_to_one(
            np.concatenate([f_src, b_src]),
            np.concatenate([f_tgt, b_tgt]),
            np.concatenate([f_score, b_score]),
            np.concatenate([f_cos, b_cos]),
        )
    order = np.argsort(-score, kind="stable")
    return Pairs(src[order], tgt[order], score[order], cos[order])


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
    return src[keep], tgt[keep], score[keep], cos[keep]

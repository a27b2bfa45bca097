"""Merging per-shard k-nearest-neighbour lists into global ones.

A query searched against several index shards gets one (sims, ids) list per shard; the global
top-k is the best k of their union. Missing neighbours (an index shard smaller than k, an IVF
probe that found too few) are id -1 with similarity -inf and sort last.
"""

from __future__ import annotations

import numpy as np

MISSING_ID = -1


def pad_topk(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, <=k) lists widened to (n, k) with missing entries; invalid ids get -inf."""
    sims = np.where(ids < 0, -np.inf, sims).astype(np.float32)
    n, width = ids.shape
    if width >= k:
        return sims[:, :k], ids[:, :k].astype(np.int64)
    pad = k - width
    return (
        np.hstack([sims, np.full((n, pad), -np.inf, np.float32)]),
        np.hstack([ids.astype(np.int64), np.full((n, pad), MISSING_ID, np.int64)]),
    )


def merge_topk(
    sims_a: np.ndarray, ids_a: np.ndarray, sims_b: np.ndarray, ids_b: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise best k of two neighbour lists of the same queries: similarity descending, then
    the smaller id (a fixed tie-break, so the merge order of shards does not matter)."""
    sims = np.hstack([sims_a, sims_b])
    ids = np.hstack([ids_a, ids_b])
    # missing entries last whatever their stored similarity; ties by id
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(ids, order, axis=1)


def neighbour_means(sims: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mean similarity of each query's found neighbours (NaN where none was found)."""
    valid = ids >= 0
    found = valid.sum(axis=1)
    total = np.where(valid, sims, 0).sum(axis=1, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(found > 0, total / found, np.nan).astype(np.float32)

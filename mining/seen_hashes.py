"""The 64-bit hashes seen so far, in 8 bytes each, for export's --dedup.

A Python set of hashes holds about 70 bytes per hash (the object and its slot): for a bitext of
250 million pairs, 17 GB. Here the hashes are sorted numpy runs, each more than twice the size of
the next, merged when a new run catches up with the last (a log-structured set): a lookup is a
binary search in each of O(log n) runs, a hash is moved O(log n) times in all, and memory is 8
bytes a hash (16 during the largest merge).
"""

from __future__ import annotations

import numpy as np


class SeenHashes:
    def __init__(self):
        self.runs: list[np.ndarray] = []  # sorted, distinct, disjoint, sizes decreasing

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(run.nbytes for run in self.runs)

    def add(self, hashes: np.ndarray) -> np.ndarray:
        """Adds the hashes; returns, per hash, whether it is new: neither seen before nor
        earlier in `hashes`."""
        unique, first = np.unique(np.asarray(hashes, np.uint64), return_index=True)
        fresh = np.ones(len(unique), dtype=bool)
        for run in self.runs:
            at = np.minimum(np.searchsorted(run, unique), len(run) - 1)
            fresh &= run[at] != unique
        new = np.zeros(len(hashes), dtype=bool)
        new[first[fresh]] = True
        self._push(unique[fresh])
        return new

    def _push(self, run: np.ndarray) -> None:
        if not len(run):
            return
        while self.runs and len(self.runs[-1]) <= 2 * len(run):
            run = np.concatenate([self.runs.pop(), run])
            run.sort()
        self.runs.append(run)

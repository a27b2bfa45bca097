"""The hash set behind export's --dedup: a Python set's answers in 8 bytes a hash."""

from itertools import pairwise

import numpy as np

from mining.seen_hashes import SeenHashes


def test_answers_as_a_python_set_does_across_batches_and_within_them():
    rng = np.random.default_rng(3)
    seen, oracle = SeenHashes(), set()
    for size in [0, 1, 5, 1000, 3, 4096, 777, 20000, 1, 0, 12345]:
        # few distinct values: repeats within a batch and across batches
        hashes = rng.integers(0, 30_000, size).astype(np.uint64)
        hashes[: size // 10] = rng.integers(0, 2**64 - 1, size // 10, dtype=np.uint64)
        expected = []
        for h in hashes.tolist():
            expected.append(h not in oracle)
            oracle.add(h)
        assert seen.add(hashes).tolist() == expected
        assert len(seen) == len(oracle) and seen.nbytes == 8 * len(oracle)
        sizes = [len(run) for run in seen.runs]
        assert all(a > 2 * b for a, b in pairwise(sizes))  # O(log n) runs

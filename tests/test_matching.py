"""Greedy matching by rounds against the sequential greedy; top-k merging against one search."""

import numpy as np
import pytest

from mining.margin import Pairs, combine
from mining.matching import BACKWARD, FORWARD, Edges, best_per_vertex, greedy_by_rounds
from mining.topk import merge_topk, neighbour_means, pad_topk


def random_candidates(rng, n_src, n_tgt, levels):
    """Each source's best target and each target's best source, with scores drawn from
    `levels` distinct values (few levels: many ties)."""
    forward = Pairs(
        np.arange(n_src),
        rng.integers(0, n_tgt, n_src),
        rng.integers(0, levels, n_src).astype(np.float32) / levels,
        rng.random(n_src, dtype=np.float32),
    )
    backward = Pairs(
        rng.integers(0, n_src, n_tgt),
        np.arange(n_tgt),
        rng.integers(0, levels, n_tgt).astype(np.float32) / levels,
        rng.random(n_tgt, dtype=np.float32),
    )
    return forward, backward


def pooled(forward, backward):
    return Edges(
        np.concatenate([forward.src, backward.src]),
        np.concatenate([forward.tgt, backward.tgt]),
        np.concatenate([forward.score, backward.score]),
        np.concatenate([forward.cos, backward.cos]),
        np.concatenate(
            [np.full(len(forward.src), FORWARD, np.int8), np.full(len(backward.src), BACKWARD)]
        ).astype(np.int8),
    )


@pytest.mark.parametrize("levels", [3, 20, 1_000_000])
@pytest.mark.parametrize("seed", range(5))
def test_rounds_give_the_sequential_greedy_matching(seed, levels):
    rng = np.random.default_rng(seed)
    forward, backward = random_candidates(rng, 300, 200, levels)
    expected = combine(forward, backward, "max")
    got, rounds = greedy_by_rounds(pooled(forward, backward))
    assert got.src.tolist() == expected.src.tolist()
    assert got.tgt.tolist() == expected.tgt.tolist()
    assert np.array_equal(got.score, expected.score) and np.array_equal(got.cos, expected.cos)
    assert 1 <= rounds < len(expected.src)


def test_a_decreasing_chain_takes_one_round_per_two_edges():
    """s0-t0 > s1-t0 > s1-t1 > s2-t1 > ...: each round can accept only the chain's head."""
    n = 10
    src = np.repeat(np.arange(n), 2)[1:]
    tgt = np.repeat(np.arange(n), 2)[:-1]
    score = np.linspace(2, 1, len(src), dtype=np.float32)
    direction = np.zeros(len(src), np.int8)
    got, rounds = greedy_by_rounds(Edges(src, tgt, score, score, direction))
    assert got.src.tolist() == list(range(n)) and got.tgt.tolist() == list(range(n))
    assert rounds == n


def test_best_per_vertex_breaks_ties_forward_first_then_by_query():
    edges = Edges(
        np.array([0, 0, 0, 1]),
        np.array([5, 6, 7, 5]),
        np.array([1.0, 1.0, 1.0, 0.5], np.float32),
        np.zeros(4, np.float32),
        np.array([BACKWARD, BACKWARD, FORWARD, FORWARD], np.int8),
    )
    assert best_per_vertex(edges, "src").tolist() == [False, False, True, True]
    # among the backward ties of source 0 the smaller target (their query) wins
    assert best_per_vertex(edges.take([0, 1]), "src").tolist() == [True, False]


def test_merged_shard_lists_equal_one_search_over_all_rows():
    rng = np.random.default_rng(1)
    sims = rng.random((50, 30), dtype=np.float32)
    k = 4
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    merged = None
    for start in range(0, 30, 7):  # shards of 7 rows, the last one of 2 (fewer than k)
        block = sims[:, start : start + 7]
        top = np.argsort(-block, axis=1, kind="stable")[:, :k]
        part = pad_topk(np.take_along_axis(block, top, axis=1), top + start, k)
        merged = part if merged is None else merge_topk(*merged, *part, k)
    assert np.array_equal(merged[1], expected)
    assert np.array_equal(merged[0], np.take_along_axis(sims, expected, axis=1))


def test_missing_neighbours_sort_last_and_leave_the_mean():
    sims, ids = pad_topk(np.array([[0.9, 0.5]], np.float32), np.array([[3, -1]]), 3)
    assert ids.tolist() == [[3, -1, -1]] and np.isneginf(sims[0, 1:]).all()
    merged = merge_topk(
        sims, ids, np.array([[0.7, 0.2, -1.0]], np.float32), np.array([[8, 9, 4]]), 3
    )
    assert merged[1].tolist() == [[3, 8, 9]]
    assert neighbour_means(sims, ids).tolist() == [pytest.approx(0.9)]
    assert np.isnan(neighbour_means(sims[:, 1:], ids[:, 1:]))[0]

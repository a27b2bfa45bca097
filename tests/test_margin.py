"""Margin scores and selected pairs against a brute-force numpy reading of the definitions."""

import numpy as np
import pytest

from indexes import faiss_index
from mining.margin import MARGINS, MODES, Neighbours, select_pairs


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def brute_force(x, y, k, kind, mode):
    """Straight from the definitions, one candidate at a time (like LASER's mine_bitexts)."""
    sim = x @ y.T
    k_x, k_y = min(k, len(y)), min(k, len(x))
    mean_x = np.sort(sim, axis=1)[:, ::-1][:, :k_x].mean(axis=1)
    mean_y = np.sort(sim.T, axis=1)[:, ::-1][:, :k_y].mean(axis=1)

    def score(i, j):
        avg = (mean_x[i] + mean_y[j]) / 2
        return {"ratio": sim[i, j] / avg, "distance": sim[i, j] - avg, "absolute": sim[i, j]}[kind]

    fwd = []
    for i in range(len(x)):
        cands = np.argsort(-sim[i])[:k_x]
        j = max(cands, key=lambda j: score(i, j))
        fwd.append((i, j, score(i, j)))
    bwd = []
    for j in range(len(y)):
        cands = np.argsort(-sim[:, j])[:k_y]
        i = max(cands, key=lambda i: score(i, j))
        bwd.append((i, j, score(i, j)))
    if mode == "forward":
        out = fwd
    elif mode == "backward":
        out = bwd
    elif mode == "intersect":
        best_src = {j: i for i, j, _ in bwd}
        out = [(i, j, s) for i, j, s in fwd if best_src[j] == i]
    elif mode == "union":
        found = {(i, j) for i, j, _ in fwd}
        out = fwd + [(i, j, s) for i, j, s in bwd if (i, j) not in found]
    else:
        out, used_s, used_t = [], set(), set()
        for i, j, s in sorted(fwd + bwd, key=lambda c: -c[2]):
            if i not in used_s and j not in used_t:
                out.append((i, j, s))
                used_s.add(i)
                used_t.add(j)
    return sorted(out, key=lambda c: -c[2])


def neighbours(x, y, k):
    def exact(vectors):
        return faiss_index.build_index(vectors, faiss_index.IndexSpec("flat", vectors.shape[1]))

    return Neighbours(*faiss_index.search(exact(y), x, k)), Neighbours(
        *faiss_index.search(exact(x), y, k)
    )


@pytest.mark.parametrize("kind", MARGINS)
@pytest.mark.parametrize("mode", MODES)
def test_random_embeddings_match_brute_force(kind, mode):
    rng = np.random.default_rng(7)
    x, y = unit(rng.normal(size=(60, 16))), unit(rng.normal(size=(45, 16)))
    pairs = select_pairs(*neighbours(x, y, 4), kind, mode)
    expected = brute_force(x, y, 4, kind, mode)
    assert [(int(s), int(t)) for s, t in zip(pairs.src, pairs.tgt, strict=True)] == [
        (i, j) for i, j, _ in expected
    ]
    np.testing.assert_allclose(pairs.score, [s for _, _, s in expected], atol=1e-5)
    np.testing.assert_allclose(pairs.cos, [float(x[i] @ y[j]) for i, j, _ in expected], atol=1e-5)


def test_translations_are_found_among_distractors():
    """Noisy copies of y are x's translations; distractors on both sides have none."""
    rng = np.random.default_rng(3)
    y = unit(rng.normal(size=(200, 32)))
    x = unit(
        np.vstack(
            [y[:100] + 0.3 * rng.normal(size=(100, 32)) / np.sqrt(32), rng.normal(size=(80, 32))]
        )
    )
    pairs = select_pairs(*neighbours(x, y, 4), "ratio", "max")
    top = pairs.src[:100], pairs.tgt[:100]
    assert np.mean(top[0] == top[1]) > 0.95
    assert pairs.score[0] > 1.1 and pairs.score[-1] < 1.05


def test_union_keeps_a_sentence_with_each_of_its_translations_and_max_keeps_one():
    """Two target sentences translate one source: each is the other side's best (backward), so
    union returns both pairs; max uses the source once."""
    rng = np.random.default_rng(5)
    y = unit(rng.normal(size=(40, 32)))
    noise = 0.2 * rng.normal(size=(40, 32)) / np.sqrt(32)
    x = unit(y[:30] + noise[:30])
    y[30] = unit([y[0] + noise[30]])[0]  # a second translation of x[0]
    pairs = {m: select_pairs(*neighbours(x, y, 4), "ratio", m) for m in ("max", "union")}
    found = {
        m: {(int(s), int(t)) for s, t in zip(p.src, p.tgt, strict=True)} for m, p in pairs.items()
    }
    assert {(0, 0), (0, 30)} <= found["union"]
    assert len({(0, 0), (0, 30)} & found["max"]) == 1
    assert {(i, i) for i in range(1, 30)} <= found["max"] & found["union"]

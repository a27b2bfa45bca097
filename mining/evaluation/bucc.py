"""BUCC 2018-style evaluation: mine a gold-aligned comparable corpus with the pipeline's own
kNN and margin code, then precision, recall, F1 and the F1-optimal threshold.

Files: `id TAB sentence` per side; gold: `src_id TAB tgt_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexes import faiss_index
from mining.bitext_readers import UnreadableBitext, utf8_text
from mining.encoders.base import Encoder
from mining.margin import Neighbours, Pairs, select_pairs


def read_sentences(path: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for number, line in enumerate(utf8_text(path).splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise UnreadableBitext(f"{path}:{number}: expected 'id<TAB>sentence'")
        sid, text = line.split("\t", 1)
        ids.append(sid)
        texts.append(text)
    return ids, texts


def read_gold(path: Path) -> set[tuple[str, str]]:
    gold = set()
    for number, line in enumerate(utf8_text(path).splitlines(), 1):
        if not line:
            continue
        if "\t" not in line:
            raise UnreadableBitext(f"{path}:{number}: expected 'src_id<TAB>tgt_id'")
        gold.add(tuple(line.split("\t")[:2]))
    return gold


def mine_vectors(x: np.ndarray, y: np.ndarray, k: int, kind: str, mode: str) -> Pairs:
    """Exact kNN both ways and margin selection, as the mine stage does it."""

    def exact(vectors):
        return faiss_index.build_index(vectors, faiss_index.IndexSpec("flat", vectors.shape[1]))

    fwd = Neighbours(*faiss_index.search(exact(y), x, k))
    bwd = Neighbours(*faiss_index.search(exact(x), y, k))
    return select_pairs(fwd, bwd, kind, mode)


@dataclass
class BuccResult:
    precision: float
    recall: float
    f1: float
    threshold: float
    gold: int
    candidates: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def best_threshold(scores: np.ndarray, correct: np.ndarray, gold: int) -> BuccResult:
    """Sweep the threshold down the sorted scores; the F1-optimal cut lies halfway to the next."""
    order = np.argsort(-scores, kind="stable")
    scores, correct = scores[order], correct[order]
    tp = np.cumsum(correct)
    kept = np.arange(1, len(scores) + 1)
    precision, recall = tp / kept, tp / max(gold, 1)
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.argmax(f1)) if len(f1) else 0
    if not len(f1):
        return BuccResult(0.0, 0.0, 0.0, 0.0, gold, 0)
    next_score = scores[best + 1] if best + 1 < len(scores) else scores[best] - 1e-3
    return BuccResult(
        float(precision[best]),
        float(recall[best]),
        float(f1[best]),
        float((scores[best] + next_score) / 2),
        gold,
        len(scores),
    )


def at_threshold(
    scores: np.ndarray, correct: np.ndarray, gold: int, threshold: float
) -> BuccResult:
    kept = scores >= threshold
    tp = int(correct[kept].sum())
    precision = tp / max(int(kept.sum()), 1)
    recall = tp / max(gold, 1)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return BuccResult(precision, recall, f1, threshold, gold, len(scores))


# Cosine floors tried by `calibrate` (None: no floor).
COSINE_FLOORS = (None, *np.round(np.arange(0.30, 0.91, 0.05), 2).tolist())


@dataclass
class DevCandidates:
    """A dev set mined without a threshold: each selected pair's score, cosine and whether it
    is a gold pair; `gold` pairs in all."""

    name: str
    score: np.ndarray
    cos: np.ndarray
    correct: np.ndarray
    gold: int


def dev_candidates(encoder, src_file, tgt_file, gold_file, k=4, kind="ratio", mode="max"):
    src_ids, src_texts = read_sentences(src_file)
    tgt_ids, tgt_texts = read_sentences(tgt_file)
    gold = read_gold(gold_file)
    pairs = mine_vectors(encoder.encode(src_texts), encoder.encode(tgt_texts), k, kind, mode)
    correct = np.array(
        [(src_ids[s], tgt_ids[t]) in gold for s, t in zip(pairs.src, pairs.tgt, strict=True)],
        dtype=bool,
    )
    name = Path(src_file).name
    return DevCandidates(name, pairs.score, pairs.cos, correct, len(gold))


def _f1_at(dev: DevCandidates, floor, thresholds: np.ndarray) -> np.ndarray:
    """F1 of the dev set at each threshold (pairs scoring at least it), under a cosine floor."""
    keep = dev.cos >= floor if floor is not None else np.ones(len(dev.cos), bool)
    score, correct = dev.score[keep], dev.correct[keep]
    order = np.argsort(score)
    score, hits = score[order], np.cumsum(correct[order][::-1])[::-1]  # hits at or above i
    at = np.searchsorted(score, thresholds, side="left")  # first kept position
    kept = len(score) - at
    tp = np.where(at < len(score), hits[np.minimum(at, len(score) - 1)], 0) if len(score) else 0
    precision = tp / np.maximum(kept, 1)
    recall = tp / max(dev.gold, 1)
    return np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)


def calibrate_filter(devs: list[DevCandidates], floors=COSINE_FLOORS) -> dict:
    """The margin threshold and cosine floor with the best mean F1 over the dev sets (one pair
    of values for all of them, as the mine stage applies them)."""
    thresholds = np.unique(np.concatenate([d.score for d in devs]))
    best = None
    for floor in floors:
        mean_f1 = np.mean([_f1_at(d, floor, thresholds) for d in devs], axis=0)
        i = int(np.argmax(mean_f1))
        if best is None or mean_f1[i] > best[0] + 1e-12:
            best = (float(mean_f1[i]), float(thresholds[i]), floor)
    mean_f1, threshold, floor = best
    per_dev = {}
    for dev in devs:
        keep = (dev.score >= threshold) & (dev.cos >= floor if floor is not None else True)
        tp = int(dev.correct[keep].sum())
        precision, recall = tp / max(int(keep.sum()), 1), tp / max(dev.gold, 1)
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        per_dev[dev.name] = {"precision": precision, "recall": recall, "f1": f1}
    return {"threshold": threshold, "min_cosine": floor, "mean_f1": mean_f1, "dev": per_dev}


def evaluate(
    encoder: Encoder,
    src_file: Path,
    tgt_file: Path,
    gold_file: Path,
    k: int = 4,
    kind: str = "ratio",
    mode: str = "max",
    threshold: float | None = None,
) -> dict:
    src_ids, src_texts = read_sentences(src_file)
    tgt_ids, tgt_texts = read_sentences(tgt_file)
    gold = read_gold(gold_file)
    pairs = mine_vectors(encoder.encode(src_texts), encoder.encode(tgt_texts), k, kind, mode)
    correct = np.array(
        [(src_ids[s], tgt_ids[t]) in gold for s, t in zip(pairs.src, pairs.tgt, strict=True)]
    )
    result = {
        "best": best_threshold(pairs.score, correct, len(gold)).as_dict(),
        "margin": kind,
        "mode": mode,
        "k": k,
    }
    if threshold is not None:
        result["at_threshold"] = at_threshold(pairs.score, correct, len(gold), threshold).as_dict()
    return result

"""Training pairs from mined bitext with score filters, and plain-text test sets."""

from __future__ import annotations

import random
from pathlib import Path

from mining.bitext_readers import iter_pairs, numbered_lines


def read_lines(path: str | Path) -> list[str]:
    """A text file's lines without trailing blank ones; a line that is not UTF-8 is reported
    by number."""
    lines = [text for _, text in numbered_lines(str(path))]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def load_pairs(
    path: str,
    src: str,
    tgt: str,
    min_score: float | None = None,
    min_cosine: float | None = None,
):
    """(src_sentences, tgt_sentences, counts) from bitext in any format `ccmine export` writes
    that says its languages (mining/bitext_readers.py), oriented src->tgt.

    Pairs under `min_score` (margin) or `min_cosine` are dropped and counted; pairs without a
    score or cosine (reference bitext, Moses files) are not filtered.
    """
    src_texts, tgt_texts = [], []
    counts = {"read": 0, "below_min_score": 0, "below_min_cosine": 0, "empty": 0}
    for s, t, score, cosine in iter_pairs(path, src, tgt):
        counts["read"] += 1
        if min_score is not None and score is not None and score < min_score:
            counts["below_min_score"] += 1
        elif min_cosine is not None and cosine is not None and cosine < min_cosine:
            counts["below_min_cosine"] += 1
        elif s and t and s.strip() and t.strip():
            src_texts.append(s.strip())
            tgt_texts.append(t.strip())
        else:
            counts["empty"] += 1
    counts["kept"] = len(src_texts)
    return src_texts, tgt_texts, counts


def split_valid(src: list[str], tgt: list[str], size: int, seed: int = 1):
    """A seeded random `size` pairs (at most 5%) as the validation set for checkpoint selection.

    Random, not the last rows: mined bitext is sorted by score, so its tail is its worst part.
    """
    size = max(1, min(size, len(src) // 20))
    valid = set(random.Random(seed).sample(range(len(src)), size))
    train = [i for i in range(len(src)) if i not in valid]
    held = sorted(valid)
    return (
        ([src[i] for i in train], [tgt[i] for i in train]),
        ([src[i] for i in held], [tgt[i] for i in held]),
    )

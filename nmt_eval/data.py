"""Training pairs from mined bitext (Parquet) with a score filter, and plain-text test sets."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq


def read_lines(path: str | Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").rstrip("\n").split("\n")


def bitext_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no Parquet files in {path}")
        return files
    if not os.path.exists(path):
        raise FileNotFoundError(f"bitext not found: {path}")
    return [path]


def load_pairs(
    path: str,
    src: str,
    tgt: str,
    min_score: float | None = None,
    min_cosine: float | None = None,
):
    """(src_sentences, tgt_sentences, counts) from ccmine bitext, oriented src->tgt.

    Mined files hold src_lang/tgt_lang columns; either orientation is accepted. Pairs under
    `min_score` (margin) or `min_cosine` are dropped and counted; files without those columns
    (reference bitext) are not filtered.
    """
    src_texts, tgt_texts = [], []
    counts = {"read": 0, "below_min_score": 0, "below_min_cosine": 0, "empty": 0}
    for file in bitext_files(path):
        table = pq.read_table(file)
        counts["read"] += table.num_rows
        for column, floor in (("score", min_score), ("cosine", min_cosine)):
            if floor is not None and column in table.column_names:
                keep = pc.greater_equal(table[column], floor)
                counts[f"below_min_{column}"] += table.num_rows - pc.sum(keep).as_py()
                table = table.filter(keep)
        if table.num_rows == 0:
            continue
        langs = (table["src_lang"][0].as_py(), table["tgt_lang"][0].as_py())
        if langs == (src, tgt):
            a, b = table["src_text"], table["tgt_text"]
        elif langs == (tgt, src):
            a, b = table["tgt_text"], table["src_text"]
        else:
            raise ValueError(f"{file} holds {langs[0]}-{langs[1]} pairs, not {src}-{tgt}")
        for s, t in zip(a.to_pylist(), b.to_pylist(), strict=True):
            if s and t and s.strip() and t.strip():
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

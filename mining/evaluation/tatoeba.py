"""Tatoeba similarity-search accuracy, as the LASER and LaBSE papers report it.

For each language xxx, `tatoeba.xxx-eng.xxx` and `tatoeba.xxx-eng.eng` are line-aligned; every
sentence is matched to its nearest neighbour (cosine) on the other side. Accuracy is reported in
both directions and as their mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mining.bitext_readers import UnreadableBitext, utf8_text
from mining.encoders.base import Encoder


@dataclass
class TatoebaScore:
    lang: str
    pairs: int
    xx_to_en: float
    en_to_xx: float

    @property
    def mean(self) -> float:
        return (self.xx_to_en + self.en_to_xx) / 2

    def as_dict(self) -> dict:
        return {**asdict(self), "mean": self.mean}


def read_pair(data_dir: Path, lang: str) -> tuple[list[str], list[str]]:
    def lines(path: Path) -> list[str]:
        return utf8_text(path).rstrip("\n").split("\n")

    xx = lines(data_dir / f"tatoeba.{lang}-eng.{lang}")
    en = lines(data_dir / f"tatoeba.{lang}-eng.eng")
    if len(xx) != len(en):
        raise UnreadableBitext(f"{data_dir}: {lang} sides differ in length ({len(xx)}, {len(en)})")
    return xx, en


def nearest_accuracy(queries: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows i whose nearest target (inner product) is row i."""
    best = np.argmax(queries @ targets.T, axis=1)
    return float(np.mean(best == np.arange(len(queries))))


def available_languages(data_dir: Path) -> list[str]:
    return sorted(p.name.split(".")[1].split("-")[0] for p in data_dir.glob("tatoeba.*-eng.eng"))


def tatoeba_score(
    encoder: Encoder, data_dir: Path, lang: str, limit: int | None = None, batch_size: int = 64
) -> TatoebaScore:
    xx, en = read_pair(Path(data_dir), lang)
    if limit:
        xx, en = xx[:limit], en[:limit]
    a = encoder.encode(xx, batch_size)
    b = encoder.encode(en, batch_size)
    return TatoebaScore(lang, len(xx), nearest_accuracy(a, b), nearest_accuracy(b, a))

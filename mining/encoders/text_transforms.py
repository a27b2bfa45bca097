"""Input normalisations an encoder declares in its `ccmine_encoder.json` (never applied to the
text that the bitext keeps)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from mining.langid import KANA


@lru_cache(maxsize=1)
def _opencc_t2s():
    import opencc

    return opencc.OpenCC("t2s")


def opencc_t2s(text: str) -> str:
    """Traditional to Simplified Chinese; other scripts pass through unchanged."""
    return _opencc_t2s().convert(text)


def opencc_t2s_chinese(text: str) -> str:
    """Traditional to Simplified Chinese for text without kana: Japanese (which is written with
    kana) keeps its kanji. For mUSE on Tatoeba v1 this lifts cmn from 90.05% to 93.70% and
    leaves jpn at 90.95% (converting everything took jpn to 88.50%)."""
    return text if KANA.search(text) else opencc_t2s(text)


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "opencc_t2s": opencc_t2s,
    "opencc_t2s_chinese": opencc_t2s_chinese,
}


def get_transform(name: str | None) -> Callable[[str], str] | None:
    if not name:
        return None
    if name not in TRANSFORMS:
        raise ValueError(f"unknown text transform {name!r}; known: {sorted(TRANSFORMS)}")
    return TRANSFORMS[name]

"""Input normalisations an encoder declares in its `ccmine_encoder.json` (never applied to the
text that the bitext keeps)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache


@lru_cache(maxsize=1)
def _opencc_t2s():
    import opencc

    return opencc.OpenCC("t2s")


def opencc_t2s(text: str) -> str:
    """Traditional to Simplified Chinese; other scripts pass through unchanged."""
    return _opencc_t2s().convert(text)


TRANSFORMS: dict[str, Callable[[str], str]] = {"opencc_t2s": opencc_t2s}


def get_transform(name: str | None) -> Callable[[str], str] | None:
    if not name:
        return None
    if name not in TRANSFORMS:
        raise ValueError(f"unknown text transform {name!r}; known: {sorted(TRANSFORMS)}")
    return TRANSFORMS[name]

"""What a mined pair must pass to be kept: margin threshold, score ceiling, cosine floor, and
different source and target text. Each dropped pair is counted under its first failed reason."""

from __future__ import annotations

import numpy as np

from mining.text_normalize import normalize_text

SCORE_REASONS = ("below_threshold", "above_max_score", "below_min_cosine")
REASONS = (*SCORE_REASONS, "identical_text")
KEEP = -1


def score_reasons(
    score: np.ndarray,
    cos: np.ndarray,
    threshold: float,
    max_score: float | None,
    min_cosine: float | None,
) -> np.ndarray:
    """Per pair, the index in SCORE_REASONS of the first cut it fails, or KEEP.

    `min_cosine` is a floor on the plain cosine beside the margin threshold: a margin compares a
    pair with its neighbourhood only, so in a sparse neighbourhood (a sentence with no
    translation on the other side) an unrelated pair can still score well.
    """
    reason = np.full(len(score), KEEP, dtype=np.int8)
    checks = (
        score < threshold,
        score > max_score if max_score is not None else np.zeros(len(score), bool),
        cos < min_cosine if min_cosine is not None else np.zeros(len(score), bool),
    )
    for code in reversed(range(len(checks))):  # the first failed check wins
        reason[checks[code]] = code
    return reason


def same_text(a: str, b: str) -> bool:
    """Source and target are the same text up to normalisation and case (untranslated)."""
    return normalize_text(a).casefold() == normalize_text(b).casefold()

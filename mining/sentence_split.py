"""Sentence splitting with sentencex (Wikimedia), which knows CJK full-width punctuation."""

from __future__ import annotations

from sentencex import segment


def split_sentences(paragraph: str, lang: str) -> list[str]:
    """Split one paragraph (no newlines) into stripped, non-empty sentences."""
    return [s.strip() for s in segment(lang or "en", paragraph) if s.strip()]

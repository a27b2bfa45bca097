"""Sentence normalisation and the stable 64-bit hash used for de-duplication and ids."""

from __future__ import annotations

import hashlib
import unicodedata

import regex

_CONTROL = regex.compile(r"[\p{Cc}\p{Cf}\p{Co}\p{Cs}]")
_SPACES = regex.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFC, control and format characters removed (ZWJ/ZWNJ kept), whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(lambda m: m.group() if m.group() in "\u200c\u200d" else " ", text)
    return _SPACES.sub(" ", text).strip()


def text_hash(text: str) -> int:
    """Stable signed 64-bit hash (BLAKE2b) of already normalised text; same on every machine."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)

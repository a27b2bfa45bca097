"""Writing-system checks: short strings in the wrong script are a known failure of language ID."""

from __future__ import annotations

import regex

# Scripts a language is normally written in (ISO 15924 names as understood by `regex`).
LANG_SCRIPTS: dict[str, tuple[str, ...]] = {
    **{
        lang: ("Latin",)
        for lang in (
            "af",
            "ca",
            "cs",
            "cy",
            "da",
            "de",
            "en",
            "eo",
            "es",
            "et",
            "eu",
            "fi",
            "fr",
            "ga",
            "gl",
            "hr",
            "hu",
            "id",
            "is",
            "it",
            "lt",
            "lv",
            "ms",
            "mt",
            "nl",
            "no",
            "nn",
            "pl",
            "pt",
            "ro",
            "sk",
            "sl",
            "sq",
            "sv",
            "sw",
            "tl",
            "tr",
            "vi",
            "la",
            "lb",
            "br",
            "oc",
        )
    },
    **{lang: ("Cyrillic",) for lang in ("ru", "uk", "be", "bg", "mk", "kk", "ky", "mn", "tt")},
    "sr": ("Cyrillic", "Latin"),
    "zh": ("Han",),
    "yue": ("Han",),
    "wuu": ("Han",),
    "ja": ("Han", "Hiragana", "Katakana"),
    "ko": ("Hangul", "Han"),
    "ar": ("Arabic",),
    "fa": ("Arabic",),
    "ur": ("Arabic",),
    "he": ("Hebrew",),
    "yi": ("Hebrew",),
    "el": ("Greek",),
    "hi": ("Devanagari",),
    "mr": ("Devanagari",),
    "ne": ("Devanagari",),
    "bn": ("Bengali",),
    "ta": ("Tamil",),
    "te": ("Telugu",),
    "ml": ("Malayalam",),
    "th": ("Thai",),
    "ka": ("Georgian",),
    "hy": ("Armenian",),
    "am": ("Ethiopic",),
    "km": ("Khmer",),
}

# Languages written without spaces between words, with their characters (punctuation and
# spaces not counted) per English word: medians over sentence pairs in ../shared/data. zh 1.42
# on newstest2021 zh-en sources (crawled Chinese is original text; translated Chinese runs
# longer: 1.80 on TICO-19), 1.40 on Tatoeba cmn and yue, wuu 1.48; ja 2.18; th 4.00; km 4.17.
# lo, my and bo are not measured and keep the earlier rule of thumb, 2.
CHARS_PER_WORD = {
    "zh": 1.4, "yue": 1.4, "wuu": 1.5, "ja": 2.2, "th": 4.0, "km": 4.2,
    "lo": 2.0, "my": 2.0, "bo": 2.0,
}  # fmt: skip
_NOT_COUNTED = regex.compile(r"[\p{P}\p{S}\s]")

_LETTER = regex.compile(r"\p{L}")
_SCRIPT_PATTERNS: dict[tuple[str, ...], regex.Pattern] = {}


def _script_pattern(scripts: tuple[str, ...]) -> regex.Pattern:
    pattern = _SCRIPT_PATTERNS.get(scripts)
    if pattern is None:
        pattern = regex.compile("[" + "".join(rf"\p{{Script={s}}}" for s in scripts) + "]")
        _SCRIPT_PATTERNS[scripts] = pattern
    return pattern


def script_fraction(text: str, lang: str) -> float | None:
    """Share of letters in `text` written in one of `lang`'s scripts; None if `lang` is unknown."""
    scripts = LANG_SCRIPTS.get(lang)
    if scripts is None:
        return None
    letters = len(_LETTER.findall(text))
    if letters == 0:
        return 0.0
    return len(_script_pattern(scripts).findall(text)) / letters


def length_units(text: str, lang: str) -> int:
    """Length in about English words: words where spaces delimit them, else characters other
    than punctuation and spaces over the language's characters per word."""
    per_word = CHARS_PER_WORD.get(lang)
    if per_word is None:
        return len(text.split())
    return round(len(_NOT_COUNTED.sub("", text)) / per_word)

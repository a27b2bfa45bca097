"""Reading bitext back from the formats `ccmine export` writes, for training (`ccmine nmt`).

Each reader yields (src_text, tgt_text, score, cosine) oriented as asked (src, tgt), with None
where a format has no score or cosine. TSV is refused: it does not say which column holds which
language.
"""

from __future__ import annotations

import gzip
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
READABLE = (
    "ccmine Parquet (a bitext directory or file), hf Parquet or JSON lines, jsonl, moses, tmx"
)


class UnreadableBitext(ValueError):
    """Bitext (or a test set) that cannot be read, or holds too little to train on; the message
    names the file and, where it can, the line or row."""


def unreadable(where: str, exc: BaseException) -> UnreadableBitext:
    """An UnreadableBitext saying where, with a library's error text on the same line."""
    return UnreadableBitext(f"{where}: {' '.join(str(exc).split())}")


def detect_format(path: str, src: str, tgt: str) -> str:
    """parquet, moses, jsonl, tmx; or an UnreadableBitext error naming what can be read."""
    stem = path[:-3] if path.endswith(".gz") else path
    gz = ".gz" if path.endswith(".gz") else ""
    if os.path.isdir(path) or stem.endswith(".parquet"):
        return "parquet"
    if not os.path.exists(path) and all(os.path.exists(f"{stem}.{x}{gz}") for x in (src, tgt)):
        return "moses"
    if stem.endswith((".jsonl", ".json")):
        return "jsonl"
    if stem.endswith(".tmx"):
        return "tmx"
    if stem.endswith(".tsv"):
        raise UnreadableBitext(
            f"{path}: TSV does not say which column holds {src} and which {tgt}; "
            f"export as moses, jsonl, tmx or hf instead (readable: {READABLE})"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"bitext not found: {path} (nor {stem}.{src}{gz} and .{tgt}{gz})")
    raise UnreadableBitext(f"{path}: unknown bitext format (readable: {READABLE})")


def iter_pairs(path: str, src: str, tgt: str) -> Iterator[tuple]:
    fmt = detect_format(path, src, tgt)
    return {"parquet": _parquet, "moses": _moses, "jsonl": _jsonl, "tmx": _tmx}[fmt](path, src, tgt)


def _oriented(pair_langs, src, tgt, where):
    if tuple(pair_langs) == (src, tgt):
        return False
    if tuple(pair_langs) == (tgt, src):
        return True
    raise UnreadableBitext(f"{where} holds {pair_langs[0]}-{pair_langs[1]} pairs, not {src}-{tgt}")


def _parquet(path, src, tgt):
    files = sorted(str(p) for p in Path(path).glob("*.parquet")) if os.path.isdir(path) else [path]
    if not files:
        raise FileNotFoundError(f"no Parquet files in {path}")
    for file in files:
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowException) as exc:
            raise unreadable(f"{file}: not readable as Parquet", exc) from exc
        names = table.column_names
        if "translation" in names:  # the hf layout
            held = [field.name for field in table.schema.field("translation").type]
            if not {src, tgt} <= set(held):
                langs = ", ".join(held)
                raise UnreadableBitext(f"{file}: translations in {langs}, not {src} and {tgt}")
            rows = table.column("translation").to_pylist()
            a = [r[src] for r in rows]
            b = [r[tgt] for r in rows]
        elif {"src_text", "tgt_text"} <= set(names):
            if not table.num_rows:
                continue
            langs = (table["src_lang"][0].as_py(), table["tgt_lang"][0].as_py())
            swap = _oriented(langs, src, tgt, file)
            a, b = table["src_text"].to_pylist(), table["tgt_text"].to_pylist()
            if swap:
                a, b = b, a
        else:
            raise UnreadableBitext(f"{file}: neither ccmine bitext nor a translation column")
        score = table["score"].to_pylist() if "score" in names else [None] * len(a)
        cosine = table["cosine"].to_pylist() if "cosine" in names else [None] * len(a)
        yield from zip(a, b, score, cosine, strict=True)


def numbered_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break) of a UTF-8 text file, gzip by suffix. Lines
    are split at line feeds only, as Moses tools split them, and decoded one by one, so that an
    invalid byte is reported at its own line."""
    number = 0
    with _open_binary(path) as stream:
        try:
            for number, line in enumerate(stream, 1):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UnreadableBitext(f"{path}:{number}: not UTF-8 ({exc.reason})") from exc
                yield number, text.removesuffix("\n").removesuffix("\r")
        except (OSError, EOFError) as exc:  # a damaged or cut gzip stream
            raise unreadable(f"{path}: unreadable after line {number}", exc) from exc


def utf8_text(path: str | Path) -> str:
    """A whole UTF-8 file's text; bytes that are not UTF-8 are reported with their line."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UnreadableBitext(f"{path}:{line}: not UTF-8 ({exc.reason})") from exc


def _open_binary(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _moses(path, src, tgt):
    stem, gz = (path[:-3], ".gz") if path.endswith(".gz") else (path, "")
    names = (f"{stem}.{src}{gz}", f"{stem}.{tgt}{gz}")
    sides = zip_longest(*(numbered_lines(name) for name in names))
    for count, (line_a, line_b) in enumerate(sides):
        if line_a is None or line_b is None:
            ended, other = names if line_a is None else names[::-1]
            raise UnreadableBitext(
                f"{ended} ends after line {count} but {other} goes on: not line-aligned"
            )
        yield line_a[1], line_b[1], None, None


def _jsonl(path, src, tgt):
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
            if "translation" in row:
                yield row["translation"][src], row["translation"][tgt], None, None
                continue
            swap = _oriented((row["src_lang"], row["tgt_lang"]), src, tgt, where)
            a, b = (
                (row["tgt_text"], row["src_text"]) if swap else (row["src_text"], row["tgt_text"])
            )
            yield a, b, row.get("score"), row.get("cosine")
        except json.JSONDecodeError as exc:
            raise UnreadableBitext(f"{where}: not JSON ({exc.msg}, column {exc.colno})") from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise UnreadableBitext(
                f"{where}: not a pair (a translation object with {src} and {tgt}, or src_lang, "
                "tgt_lang, src_text and tgt_text)"
            ) from exc


def _tmx(path, src, tgt):
    units = 0
    with _open_binary(path) as stream:
        try:
            for _event, element in ET.iterparse(stream):
                if element.tag != "tu":
                    continue
                units += 1
                yield _unit(element, src, tgt, f"{path}: tu {units}")
                element.clear()
        except ET.ParseError as exc:  # its text says where: "..., line 3, column 52"
            raise unreadable(f"{path}: not well-formed XML", exc) from exc
        except (OSError, EOFError) as exc:  # a damaged or cut gzip stream
            raise unreadable(f"{path}: unreadable after tu {units}", exc) from exc


def _unit(element: ET.Element, src: str, tgt: str, where: str) -> tuple:
    """(src, tgt, score, cosine) of a TMX <tu>; props other than score and cosine are left."""
    segs = {tuv.get(XML_LANG): tuv.findtext("seg") or "" for tuv in element.iter("tuv")}
    if src not in segs or tgt not in segs:
        raise UnreadableBitext(f"{where}: no tuv for {src} or {tgt}")
    numbers = {}
    for prop in element.iter("prop"):
        if prop.get("type") in ("score", "cosine"):
            try:
                numbers[prop.get("type")] = float(prop.text)
            except (TypeError, ValueError) as exc:
                raise UnreadableBitext(
                    f"{where}: {prop.get('type')} {prop.text!r} is not a number"
                ) from exc
    return segs[src], segs[tgt], numbers.get("score"), numbers.get("cosine")

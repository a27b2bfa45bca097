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
from pathlib import Path

import pyarrow.parquet as pq

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
READABLE = (
    "ccmine Parquet (a bitext directory or file), hf Parquet or JSON lines, jsonl, moses, tmx"
)


class UnreadableBitext(ValueError):
    pass


def _open_text(path: str):
    return (
        gzip.open(path, "rt", encoding="utf-8")
        if path.endswith(".gz")
        else open(path, encoding="utf-8")
    )


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
        table = pq.read_table(file)
        names = table.column_names
        if "translation" in names:  # the hf layout
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


def _moses(path, src, tgt):
    stem, gz = (path[:-3], ".gz") if path.endswith(".gz") else (path, "")
    with _open_text(f"{stem}.{src}{gz}") as a, _open_text(f"{stem}.{tgt}{gz}") as b:
        for line_a, line_b in zip(a, b, strict=True):
            yield line_a.rstrip("\n"), line_b.rstrip("\n"), None, None


def _jsonl(path, src, tgt):
    with _open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            row = json.loads(line)
            if "translation" in row:
                yield row["translation"][src], row["translation"][tgt], None, None
                continue
            swap = _oriented((row["src_lang"], row["tgt_lang"]), src, tgt, f"{path}:{number}")
            a, b = (
                (row["tgt_text"], row["src_text"]) if swap else (row["src_text"], row["tgt_text"])
            )
            yield a, b, row.get("score"), row.get("cosine")


def _tmx(path, src, tgt):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as stream:
        for _event, element in ET.iterparse(stream):
            if element.tag != "tu":
                continue
            segs = {tuv.get(XML_LANG): tuv.findtext("seg") or "" for tuv in element.iter("tuv")}
            props = {p.get("type"): float(p.text) for p in element.iter("prop")}
            if src not in segs or tgt not in segs:
                raise UnreadableBitext(f"{path}: a tu without both {src} and {tgt}")
            yield segs[src], segs[tgt], props.get("score"), props.get("cosine")
            element.clear()

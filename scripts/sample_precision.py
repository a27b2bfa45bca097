"""Precision of pairs mined from the bundled sample crawl, judged by document alignment.

The sample's pages are translations of each other page by page (`ch01.de.html`, `ch01.en.html`):
a pair counts as correct when both sentences come from translations of the same page.

    python scripts/sample_precision.py runs/sample-de --src de [--show 20]
"""

from __future__ import annotations

import argparse
import random
import re

from pipelines.mine import read_bitext

LANG_SUFFIX = re.compile(r"\.[a-z]{2}(?:-[a-z]{2})?\.html$")


def page(url: str) -> str:
    return LANG_SUFFIX.sub("", url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--src", required=True)
    parser.add_argument("--tgt", default="en")
    parser.add_argument("--show", type=int, default=0, help="Print a random sample of pairs.")
    args = parser.parse_args()
    rows = read_bitext(f"{args.run_dir}/bitext/{args.src}-{args.tgt}").to_pylist()
    correct = [page(r["src_url"]) == page(r["tgt_url"]) for r in rows]
    print(
        f"{args.src}-{args.tgt}: {len(rows)} pairs, precision by document alignment "
        f"{sum(correct) / max(len(rows), 1):.3f}"
    )
    for top in (100, 500, 1000, 2000):
        if len(rows) > top:
            print(f"  best {top}: {sum(correct[:top]) / top:.3f}")
    for r, ok in random.Random(0).sample(
        list(zip(rows, correct, strict=True)), min(args.show, len(rows))
    ):
        print(
            f"{'OK ' if ok else 'XX '} {r['score']:.3f}  {r['src_text'][:90]}\n"
            f"     {'':5}  {r['tgt_text'][:90]}"
        )


if __name__ == "__main__":
    main()

"""Score mined bitext against the known alignment of a comparable corpus (the NMT experiment's).

Prints precision and recall of the mined pairs at several margin thresholds and writes, as JSON,
the F1-optimal threshold: the threshold `ccmine calibrate` would pick with this corpus as its
dev set. A pair counts as correct only if both normalised sides equal one gold pair.

    python scripts/score_mined.py --mined RUN/bitext/de-en --gold gold.parquet --json out.json \
        [--write-correct correct.parquet]

--write-correct writes the mined pairs at or above the (rounded) F1-optimal threshold that are
gold pairs: an oracle-cleaned control that separates the cost of wrong pairs from that of
missing ones.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow.parquet as pq

from mining.text_normalize import normalize_text
from pipelines.mine import read_bitext

THRESHOLDS = (0.95, 1.0, 1.05, 1.1, 1.15, 1.2)


def gold_keys(path: str) -> set[tuple[str, str]]:
    table = pq.read_table(path).to_pydict()
    return {
        (normalize_text(a), normalize_text(b))
        for a, b in zip(table["src_text"], table["tgt_text"], strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mined", required=True, help="RUN/bitext/XX-en directory")
    parser.add_argument("--gold", required=True, help="gold.parquet with en as src_text")
    parser.add_argument("--json", required=True)
    parser.add_argument("--write-correct", help="Parquet of the correct pairs kept (a control)")
    args = parser.parse_args()
    gold = gold_keys(args.gold)
    mined = read_bitext(args.mined).to_pydict()
    scores = np.asarray(mined["score"])
    correct = np.array(
        [
            (normalize_text(en), normalize_text(xx)) in gold
            for xx, en in zip(mined["src_text"], mined["tgt_text"], strict=True)
        ]
    )
    order = np.argsort(-scores, kind="stable")
    scores, correct = scores[order], correct[order]
    true_pos = np.cumsum(correct)
    precision = true_pos / np.arange(1, len(scores) + 1)
    recall = true_pos / len(gold)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(f1.argmax())
    rows = []
    for threshold in THRESHOLDS:
        kept = int((scores >= threshold).sum())
        if kept:
            rows.append(
                {
                    "threshold": threshold,
                    "kept": kept,
                    "precision": round(float(precision[kept - 1]), 3),
                    "recall": round(float(recall[kept - 1]), 3),
                }
            )
            print(" ".join(f"{k} {v}" for k, v in rows[-1].items()))
    result = {
        "gold_pairs": len(gold),
        "mined_pairs": len(scores),
        "best_threshold": round(float(scores[best]), 4),
        "best": {
            "kept": best + 1,
            "precision": round(float(precision[best]), 3),
            "recall": round(float(recall[best]), 3),
            "f1": round(float(f1[best]), 3),
        },
        "by_threshold": rows,
    }
    print(f"F1-optimal threshold {result['best_threshold']}: {result['best']}")
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
    if args.write_correct:
        # the same cut as `ccmine nmt --min-score best_threshold` (the rounded threshold)
        kept = scores >= np.float32(result["best_threshold"])
        table = read_bitext(args.mined).take(order[kept & correct])
        pq.write_table(table, args.write_correct)
        print(f"{table.num_rows:,} correct pairs written to {args.write_correct}")


if __name__ == "__main__":
    main()

"""Score mined bitext against the known alignment of a comparable corpus (the NMT experiment's).

Prints precision and recall of the mined pairs at several margin thresholds and picks the filter
for training: the margin threshold and cosine floor (`ccmine nmt --min-score --min-cosine`) with
the best F-beta against the gold alignment, beta 0.5 by default (precision weighs more: wrong
pairs cost an NMT system BLEU, missing ones barely do; see results/nmt.md). A pair counts as
correct only if both normalised sides equal one gold pair.

    python scripts/score_mined.py --mined RUN/bitext/de-en --gold gold.parquet --json out.json \
        [--beta 0.5] [--filter-args filter.args] [--write-correct correct.parquet]

--filter-args writes the chosen filter as `ccmine nmt` options (`--min-score T --min-cosine C`).

--write-correct writes the kept mined pairs that are gold pairs: an oracle-cleaned control that
separates the cost of wrong pairs from that of missing ones.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow.parquet as pq

from mining.text_normalize import normalize_text
from pipelines.mine import read_bitext

THRESHOLDS = (0.95, 1.0, 1.05, 1.1, 1.15, 1.2)
COSINE_FLOORS = (None, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)


def gold_keys(path: str) -> set[tuple[str, str]]:
    table = pq.read_table(path).to_pydict()
    return {
        (normalize_text(a), normalize_text(b))
        for a, b in zip(table["src_text"], table["tgt_text"], strict=True)
    }


def best_cut(scores, correct, gold: int, beta: float) -> dict:
    """The F-beta-optimal margin threshold over pairs sorted by score (best first)."""
    true_pos = np.cumsum(correct)
    precision = true_pos / np.arange(1, len(scores) + 1)
    recall = true_pos / gold
    b2 = beta * beta
    f_beta = (1 + b2) * precision * recall / np.maximum(b2 * precision + recall, 1e-12)
    best = int(f_beta.argmax())
    return {
        "threshold": round(float(scores[best]), 4),
        "kept": best + 1,
        "correct": int(true_pos[best]),
        "precision": round(float(precision[best]), 3),
        "recall": round(float(recall[best]), 3),
        "f_beta": round(float(f_beta[best]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mined", required=True, help="RUN/bitext/XX-en directory")
    parser.add_argument("--gold", required=True, help="gold.parquet with en as src_text")
    parser.add_argument("--json", required=True)
    parser.add_argument("--beta", type=float, default=0.5, help="F-beta of the filter choice")
    parser.add_argument("--write-correct", help="Parquet of the correct pairs kept (a control)")
    parser.add_argument(
        "--filter-args", help="Write the chosen filter here as `ccmine nmt` options, one line"
    )
    args = parser.parse_args()
    gold = gold_keys(args.gold)
    table = read_bitext(args.mined)
    mined = table.to_pydict()
    scores, cosines = np.asarray(mined["score"]), np.asarray(mined["cosine"])
    correct = np.array(
        [
            (normalize_text(en), normalize_text(xx)) in gold
            for xx, en in zip(mined["src_text"], mined["tgt_text"], strict=True)
        ]
    )
    order = np.argsort(-scores, kind="stable")
    scores, cosines, correct = scores[order], cosines[order], correct[order]
    rows = []
    for threshold in THRESHOLDS:
        kept = scores >= threshold
        if kept.any():
            true_pos = int(correct[kept].sum())
            rows.append(
                {
                    "threshold": threshold,
                    "kept": int(kept.sum()),
                    "precision": round(true_pos / int(kept.sum()), 3),
                    "recall": round(true_pos / len(gold), 3),
                }
            )
            print(" ".join(f"{k} {v}" for k, v in rows[-1].items()))
    by_floor = []
    for floor in COSINE_FLOORS:
        sel = np.ones(len(scores), bool) if floor is None else cosines >= np.float32(floor)
        if sel.any():
            cut = best_cut(scores[sel], correct[sel], len(gold), args.beta)
            by_floor.append({"min_cosine": floor, **cut})
            print(" ".join(f"{k} {v}" for k, v in by_floor[-1].items()))
    best = max(by_floor, key=lambda row: row["f_beta"])
    result = {
        "gold_pairs": len(gold),
        "mined_pairs": len(scores),
        "beta": args.beta,
        "best_threshold": best["threshold"],
        "best_min_cosine": best["min_cosine"],
        "best": {k: v for k, v in best.items() if k not in ("threshold", "min_cosine")},
        "margin_only": by_floor[0],
        "by_min_cosine": by_floor,
        "by_threshold": rows,
    }
    print(f"F{args.beta}-optimal filter: {best}")
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
    if args.filter_args:
        options = ["--min-score", str(best["threshold"])]
        if best["min_cosine"] is not None:
            options += ["--min-cosine", str(best["min_cosine"])]
        with open(args.filter_args, "w") as out:
            out.write(" ".join(options) + "\n")
    if args.write_correct:
        # the same cut as `ccmine nmt --min-score T --min-cosine C` (the rounded threshold)
        kept = scores >= np.float32(best["threshold"])
        if best["min_cosine"] is not None:
            kept &= cosines >= np.float32(best["min_cosine"])
        correct_table = table.take(order[kept & correct])
        pq.write_table(correct_table, args.write_correct)
        print(f"{correct_table.num_rows:,} correct pairs written to {args.write_correct}")


if __name__ == "__main__":
    main()

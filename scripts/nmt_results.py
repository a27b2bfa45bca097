"""Table of the NMT experiment: BLEU and chrF of gold, mined and random systems per direction.

    python scripts/nmt_results.py --runs runs/nmt-experiment

Reads RUNS/{de,zh}-{gold,mined,random}/report.json (written by `ccmine nmt`) and
RUNS/mine-XX/score.json (scripts/score_mined.py); prints Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SYSTEMS = ("gold", "mined", "mined-correct", "random")  # mined-correct: optional control


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    args = parser.parse_args()
    print("| direction | system | training pairs | BLEU | chrF | BLEU / gold |")
    print("|---|---|---:|---:|---:|---:|")
    for lang in ("de", "zh"):
        reports = {s: load(args.runs / f"{lang}-{s}" / "report.json") for s in SYSTEMS}
        if reports["gold"] is None:
            continue
        for i, gold in enumerate(reports["gold"]["results"]):
            for system, report in reports.items():
                if report is None:
                    continue
                result = report["results"][i]
                ratio = result["bleu"] / gold["bleu"] if gold["bleu"] else float("nan")
                print(
                    f"| {result['direction']} | {system} | {report['data']['train']:,} "
                    f"| {result['bleu']:.2f} | {result['chrf']:.2f} | {ratio:.2f} |"
                )
    for lang in ("de", "zh"):
        score = load(args.runs / f"mine-{lang}" / "score.json")
        if score:
            best = score["best"]
            print(
                f"\n{lang}-en mining: {score['mined_pairs']:,} candidate pairs; threshold "
                f"{score['best_threshold']} keeps {best['kept']:,} at precision "
                f"{best['precision']}, recall {best['recall']} "
                f"of {score['gold_pairs']:,} gold pairs"
            )


if __name__ == "__main__":
    main()

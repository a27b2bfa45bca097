"""Table of the NMT experiment: BLEU and chrF of gold, mined and random systems per direction.

    python scripts/nmt_results.py --runs runs/nmt-experiment

Reads RUNS/XX-SYSTEM/report.json (seed 1) and RUNS/XX-SYSTEM-seedN/report.json (written by
`ccmine nmt`), averages each system over its seeds, and RUNS/mine-XX/score.json
(scripts/score_mined.py); prints Markdown. BLEU / gold is the ratio of the seed means.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean

SYSTEMS = ("gold", "mined", "mined-correct", "random")  # mined-correct: optional control


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def seed_reports(runs: Path, lang: str, system: str) -> list[dict]:
    """The system's reports, one per seed, in seed order."""
    paths = [runs / f"{lang}-{system}" / "report.json"]
    paths += sorted(runs.glob(f"{lang}-{system}-seed*/report.json"))
    reports = [r for r in map(load, paths) if r is not None]
    return sorted(reports, key=lambda r: r["config"].get("seed", 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    args = parser.parse_args()
    print(
        "| direction | system | seeds | train pairs | BLEU per seed | BLEU | chrF | BLEU / gold |"
    )
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for lang in ("de", "zh"):
        systems = {s: seed_reports(args.runs, lang, s) for s in SYSTEMS}
        if not systems["gold"]:
            continue
        for i, direction in enumerate(r["direction"] for r in systems["gold"][0]["results"]):
            gold_bleu = mean(r["results"][i]["bleu"] for r in systems["gold"])
            for system, reports in systems.items():
                if not reports:
                    continue
                bleu = [r["results"][i]["bleu"] for r in reports]
                chrf = mean(r["results"][i]["chrf"] for r in reports)
                ratio = mean(bleu) / gold_bleu if gold_bleu else float("nan")
                print(
                    f"| {direction} | {system} | {len(reports)} "
                    f"| {reports[0]['data']['train']:,} | {' / '.join(f'{b:.2f}' for b in bleu)} "
                    f"| {mean(bleu):.2f} | {chrf:.2f} | {ratio:.2f} |"
                )
    for lang in ("de", "zh"):
        score = load(args.runs / f"mine-{lang}" / "score.json")
        if score:
            best = score["best"]
            print(
                f"\n{lang}-en mining: {score['mined_pairs']:,} candidate pairs; margin "
                f">= {score['best_threshold']} and cosine >= {score.get('best_min_cosine')} "
                f"keep {best['kept']:,} at precision {best['precision']}, recall "
                f"{best['recall']} of {score['gold_pairs']:,} gold pairs"
            )


if __name__ == "__main__":
    main()

"""Write the bundled encoder's model card (README.md) from its training record and evaluations.

    python scripts/encoder_card.py --encoder mining/encoders/bundled \
        --counts build/encoder/data/counts.json --tatoeba build/encoder/tatoeba.json \
        --bucc build/encoder/bucc-de-en.json build/encoder/bucc-zh-en.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mining.encoders import load_encoder
from mining.encoders.loading import read_encoder_config
from mining.evaluation.tatoeba import read_pair


def encoding_speed(encoder_dir: str, tatoeba_dir: Path, batch_size: int = 64) -> float:
    encoder = load_encoder(encoder_dir, device="cpu")
    texts = read_pair(tatoeba_dir, "deu")[0] + read_pair(tatoeba_dir, "cmn")[0]
    encoder.encode(texts[:128], batch_size)  # warm-up
    start = time.perf_counter()
    encoder.encode(texts, batch_size)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="mining/encoders/bundled")
    parser.add_argument("--counts", type=Path, required=True)
    parser.add_argument("--tatoeba", type=Path, required=True)
    parser.add_argument("--tatoeba-dir", type=Path, default=Path("../shared/data/tatoeba/v1"))
    parser.add_argument("--bucc", type=Path, nargs="*", default=[])
    args = parser.parse_args()

    folder = Path(args.encoder)
    meta = read_encoder_config(str(folder))
    counts = json.loads(args.counts.read_text())
    tatoeba = json.loads(args.tatoeba.read_text())["scores"]
    model, training, history = meta["model_config"], meta["training"], meta["history"]
    size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    speed = encoding_speed(str(folder), args.tatoeba_dir)
    by_lang = {s["lang"]: s for s in tatoeba}

    lines = [
        "# ccmine bundled encoder",
        "",
        "A small multilingual sentence encoder (German, Chinese and English) trained from scratch",
        "by `ccmine train-encoder`, the project's implementation of the LaBSE recipe, on offline",
        "data only. Rebuild it with `make encoder`.",
        "",
        "## Architecture",
        "",
        f"- BERT encoder shared by all languages: {model['layers']} layers, "
        f"hidden {model['hidden']}, "
        f"{model['heads']} heads, FFN {model['ffn']}, max {model['max_len']} tokens",
        f"- {model['pooling']} pooling, Dense+tanh head: {model['dense']}, L2-normalised output",
        f"- SentencePiece unigram vocabulary of {model['vocab_size']} pieces with byte fallback, "
        "trained on the training text",
        "- Input transform: Chinese is converted to Simplified script with OpenCC (t2s) before "
        "encoding (`ccmine_encoder.json`); the mined text keeps its original script",
        f"- Weights in float16 safetensors; {size_mb:.1f} MB on disk",
        "",
        "## Training",
        "",
        f"- Translation ranking loss with in-batch negatives in both directions, additive margin "
        f"{training['margin']}, scale {training['scale']}; batch {training['batch_size']} pairs of "
        f"one language pair at a time (de-en and zh-en alternating)",
        f"- {training['steps']} steps, AdamW, peak learning rate {training['lr']}, warm-up then "
        f"cosine decay; masked-LM pretraining steps: {training['mlm_steps']}",
        f"- Training time: {history[-1]['minutes']:.0f} minutes on 2 CPU cores",
        "",
        "Tatoeba v1 dev accuracy (mean of both directions) during training:",
        "",
        "| step | minutes | loss | deu | cmn |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {h['step']} | {h['minutes']:.1f} | {h['loss']:.3f} | {h.get('deu', 0):.1%} | "
        f"{h.get('cmn', 0):.1%} |"
        for h in history
    ]
    lines += [
        "",
        "## Data",
        "",
        "Built by `ccmine prepare-encoder-data`. Pairs touching Tatoeba v1 (any language) "
        "or newstest2021 were removed; Multi30k and 10,000 seeded Anki en-zh pairs are "
        "reserved for the NMT experiment. Sampling weight per pair in brackets.",
        "",
        "| source | raw | kept | evaluation overlap removed | duplicates | other |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, c in counts.items():
        if not isinstance(c, dict) or "raw" not in c:
            continue
        other = c.get("empty_or_long", 0) + c.get("reserved_overlap", 0)
        lines.append(
            f"| {name} [{counts['weights'][name]}] | {c['raw']} | {c.get('kept', 0)} | "
            f"{c.get('evaluation_overlap', 0)} | {c.get('duplicate', 0)} | {other} |"
        )
    lines += [
        "",
        "## Scores",
        "",
        f"- Speed: {speed:.0f} Tatoeba sentences per second on this 2-core CPU (batch 64)",
        f"- Tatoeba v1, mean of both directions: deu {by_lang['deu']['mean']:.1%}, "
        f"cmn {by_lang['cmn']['mean']:.1%} (cmn-eng overlap with the training data was "
        "removed before training)",
    ]
    for path in args.bucc:
        result = json.loads(path.read_text())
        best = result["best"]
        lines.append(
            f"- BUCC-style {path.stem.removeprefix('bucc-')} (newstest2021 gold pairs among "
            f"distractors): F1 {best['f1']:.3f} (P {best['precision']:.3f}, R "
            f"{best['recall']:.3f}) at {result['margin']} margin {best['threshold']:.3f}"
        )
    average = sum(s["mean"] for s in tatoeba) / len(tatoeba)
    lines += [
        "",
        f"All {len(tatoeba)} Tatoeba v1 languages (most were never in the training data "
        f"and are near chance; average {average:.1%}):",
        "",
        "| lang | pairs | xx->en | en->xx | mean |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {s['lang']} | {s['pairs']} | {s['xx_to_en']:.1%} | {s['en_to_xx']:.1%} | "
        f"{s['mean']:.1%} |"
        for s in sorted(tatoeba, key=lambda s: -s["mean"])
    ]
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"model card written to {folder / 'README.md'}")


if __name__ == "__main__":
    main()

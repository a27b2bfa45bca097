"""Train and score NMT on bitext in both directions with fairseq's own console scripts.

Steps per direction: joint SentencePiece (shared by both directions), fairseq-preprocess,
fairseq-train (which resumes from checkpoint_last.pt after an interruption), fairseq-generate,
SentencePiece decoding, sacrebleu BLEU (the `zh` tokenizer for Chinese targets) and chrF.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from mining.bitext_readers import UnreadableBitext
from nmt_eval.data import load_pairs, read_lines, split_valid
from nmt_eval.presets import PRESETS

log = logging.getLogger("ccmine")


@dataclass
class NmtConfig:
    pair: str  # e.g. "en-de": both en->de and de->en are trained
    bitext: str
    test_src: str  # in the pair's first language
    test_ref: str  # in the second
    out_dir: str
    preset: str = "cpu-tiny"
    min_score: float | None = None
    min_cosine: float | None = None
    max_update: int | None = None
    valid_size: int = 500
    seed: int = 1
    device: str = "auto"  # auto: a GPU if torch sees one; cpu; cuda


def fairseq_command(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: install the nmt extra (make nmt-install)")
    return found


def run_logged(command: list[str], log_path: Path, stdout_path: Path | None = None) -> None:
    """Run a fairseq script, streaming its log lines; a failure names the command and its tail."""
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=15)
    log.info("running %s", " ".join(command[:2]))
    with open(log_path, "a", encoding="utf-8") as log_file:
        out = open(stdout_path, "w", encoding="utf-8") if stdout_path else None
        try:
            process = subprocess.Popen(
                command,
                stdout=out or subprocess.PIPE,
                stderr=subprocess.STDOUT if out is None else subprocess.PIPE,
                text=True,
                env=env,
            )
            for line in process.stdout if out is None else process.stderr:
                log_file.write(line)
                tail.append(line.rstrip())
                if "| INFO |" in line and ("epoch" in line or "valid" in line):
                    log.info("%s", line.rstrip())
            process.wait()
        finally:
            if out:
                out.close()
    if process.returncode != 0:
        raise RuntimeError(
            f"{Path(command[0]).name} failed ({process.returncode}); see {log_path}:\n"
            + "\n".join(tail)
        )


def train_spm(texts: list[str], prefix: Path, vocab_size: int):
    import sentencepiece as spm

    if not prefix.with_suffix(".model").exists():
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            character_coverage=0.9995,
            model_type="unigram",
            minloglevel=2,
            num_threads=2,
            hard_vocab_limit=False,
        )
    return spm.SentencePieceProcessor(model_file=str(prefix.with_suffix(".model")))


def write_pieces(sp, lines: list[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(" ".join(sp.encode(line, out_type=str)) + "\n")


def parse_generate(path: Path, count: int, sp) -> list[str]:
    """Hypotheses of fairseq-generate (H-<id> lines) in input order, SentencePiece-decoded."""
    hyps = [""] * count
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("H-"):
            head, _score, text = line.split("\t", 2)
            hyps[int(head[2:])] = sp.decode(text.split())
    return hyps


def score(hyps: list[str], refs: list[str], tgt: str) -> dict:
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh" if tgt == "zh" else "13a")
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    return {
        "bleu": round(bleu.score, 2),
        "chrf": round(chrf.score, 2),
        "bleu_signature": str(bleu.format(signature=True).split(" = ")[0])
        if hasattr(bleu, "format")
        else "",
    }


def resolve_device(device: str) -> str:
    """`cpu` or `cuda`; fairseq takes the GPU unless told `--cpu`."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; one of auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise RuntimeError("--device cuda, but torch sees no GPU")
    return "cpu"


def train_direction(config: NmtConfig, src: str, tgt: str, sp, train, valid, test) -> dict:
    work = Path(config.out_dir) / f"{src}-{tgt}"
    pieces, data_bin, checkpoints = work / "sp", work / "data-bin", work / "checkpoints"
    pieces.mkdir(parents=True, exist_ok=True)
    log_path = work / "fairseq.log"
    if not (data_bin / f"dict.{src}.txt").exists():
        for split, (a, b) in (("train", train), ("valid", valid), ("test", test)):
            write_pieces(sp, a, pieces / f"{split}.{src}")
            write_pieces(sp, b, pieces / f"{split}.{tgt}")
        run_logged(
            [
                fairseq_command("fairseq-preprocess"),
                "--source-lang",
                src,
                "--target-lang",
                tgt,
                "--trainpref",
                str(pieces / "train"),
                "--validpref",
                str(pieces / "valid"),
                "--testpref",
                str(pieces / "test"),
                "--destdir",
                str(data_bin),
                "--joined-dictionary",
                "--workers",
                "2",
            ],
            log_path,
        )
    preset = PRESETS[config.preset]
    cpu = ["--cpu"] if resolve_device(config.device) == "cpu" else []
    train_args = list(preset["train"]) + cpu
    if config.max_update is not None:
        train_args[train_args.index("--max-update") + 1] = str(config.max_update)
    run_logged(
        [
            fairseq_command("fairseq-train"),
            str(data_bin),
            "--source-lang",
            src,
            "--target-lang",
            tgt,
            "--save-dir",
            str(checkpoints),
            "--seed",
            str(config.seed),
            "--no-epoch-checkpoints",
            "--log-format",
            "simple",
            "--log-interval",
            "50",
            *train_args,
        ],
        log_path,
    )
    generated = work / "generate.out"
    run_logged(
        [
            fairseq_command("fairseq-generate"),
            str(data_bin),
            "--source-lang",
            src,
            "--target-lang",
            tgt,
            "--path",
            str(checkpoints / "checkpoint_best.pt"),
            "--gen-subset",
            "test",
            "--beam",
            str(preset["beam"]),
            "--batch-size",
            "64",
            *cpu,
        ],
        log_path,
        stdout_path=generated,
    )
    hyps = parse_generate(generated, len(test[0]), sp)
    (work / f"hypotheses.{tgt}").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    return {"direction": f"{src}-{tgt}", "test_sentences": len(hyps), **score(hyps, test[1], tgt)}


def run(config: NmtConfig) -> dict:
    first, second = config.pair.split("-")
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    test_a, test_b = read_lines(config.test_src), read_lines(config.test_ref)
    if len(test_a) != len(test_b):
        raise UnreadableBitext(
            f"test set: {config.test_src} has {len(test_a)} lines, {config.test_ref} "
            f"{len(test_b)}: not line-aligned"
        )
    a, b, counts = load_pairs(config.bitext, first, second, config.min_score, config.min_cosine)
    if len(a) < 20:
        raise UnreadableBitext(
            f"{config.bitext}: only {len(a)} training pairs after filtering, too few to train on"
        )
    (train_a, train_b), (valid_a, valid_b) = split_valid(a, b, config.valid_size, config.seed)
    sp = train_spm(train_a + train_b, out / "spm", PRESETS[config.preset]["vocab_size"])
    results = [
        train_direction(
            config, first, second, sp, (train_a, train_b), (valid_a, valid_b), (test_a, test_b)
        ),
        train_direction(
            config, second, first, sp, (train_b, train_a), (valid_b, valid_a), (test_b, test_a)
        ),
    ]
    report = {
        "config": asdict(config),
        "data": {**counts, "train": len(train_a), "valid": len(valid_a)},
        "results": results,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report


def summary(report: dict) -> str:
    return (
        " | ".join(
            f"{r['direction']}: BLEU {r['bleu']:.2f} chrF {r['chrf']:.2f}"
            for r in report["results"]
        )
        + f" ({report['data']['train']} training pairs)"
    )

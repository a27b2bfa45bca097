"""The training loop: optional MLM pretraining, then the translation ranking stage.

Batches hold pairs of one language pair at a time (de-en, zh-en alternating), drawn with the
per-source weights of the corpus; checkpoints are atomic and a rerun resumes from the last one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mining.bitext_readers import UnreadableBitext, numbered_lines
from mining.encoder_training.loss import additive_margin_ranking_loss
from mining.encoder_training.model import (
    DualEncoder,
    ModelConfig,
    export_labse_layout,
    fast_tokenizer,
    train_sentencepiece,
)
from mining.encoders.text_transforms import opencc_t2s

log = logging.getLogger("ccmine")
TATOEBA_CODES = {"de": "deu", "zh": "cmn"}


@dataclass
class TrainConfig:
    data: str
    work_dir: str
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 200
    margin: float = 0.3
    scale: float = 20.0
    mlm_steps: int = 0
    mlm_batch_size: int = 128
    eval_every: int = 500
    checkpoint_every: int = 200
    tatoeba_dir: str | None = None
    seed: int = 0
    threads: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)


@dataclass
class Corpus:
    """Pairs per language with sampling probabilities from the source weights."""

    pairs: dict[str, list[tuple[str, str]]]
    probs: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: str) -> Corpus:
        pairs, weights = defaultdict(list), defaultdict(list)
        for number, line in numbered_lines(path):
            try:
                lang, _source, weight, en, xx = line.split("\t")
                weights[lang].append(float(weight))
            except ValueError as exc:
                raise UnreadableBitext(
                    f"{path}:{number}: expected lang, source, weight, en and xx, tab-separated"
                ) from exc
            pairs[lang].append((en, opencc_t2s(xx) if lang == "zh" else xx))
        probs = {lang: np.asarray(w) / np.sum(w) for lang, w in weights.items()}
        return cls(dict(pairs), probs)

    def batch(self, lang: str, size: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        """Weighted draw without repeated sentences on either side (false negatives)."""
        chosen, seen_en, seen_xx = [], set(), set()
        while len(chosen) < size:
            for i in rng.choice(len(self.pairs[lang]), size=size, p=self.probs[lang]):
                en, xx = self.pairs[lang][i]
                if en not in seen_en and xx not in seen_xx:
                    seen_en.add(en)
                    seen_xx.add(xx)
                    chosen.append((en, xx))
                    if len(chosen) == size:
                        break
        return chosen

    def texts(self, limit: int, rng: random.Random) -> list[str]:
        every = [t for pairs in self.pairs.values() for pair in pairs for t in pair]
        rng.shuffle(every)
        return every[:limit]


def lr_at(step: int, config: TrainConfig, total: int) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, total - config.warmup)
    return config.lr * max(0.0, 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _save_atomic(payload: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.work = Path(config.work_dir)
        self.work.mkdir(parents=True, exist_ok=True)
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.corpus = Corpus.load(config.data)
        self.tokenizer = self._tokenizer()
        self.model = DualEncoder(config.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=0.01)
        self.rng = np.random.default_rng(config.seed)
        self.step = 0
        self.history: list[dict] = []
        self.seconds = 0.0
        self._resume()

    def _tokenizer(self):
        prefix = self.work / "spm"
        if prefix.with_suffix(".model").exists():
            return fast_tokenizer(prefix.with_suffix(".model"))
        texts = self.corpus.texts(1_000_000, random.Random(self.config.seed))
        return train_sentencepiece(texts, prefix, self.config.model.vocab_size)

    def _checkpoint_path(self) -> Path:
        return self.work / "checkpoint.pt"

    def _config_key(self) -> dict:
        key = asdict(self.config)
        for volatile in ("steps", "eval_every", "checkpoint_every", "threads", "tatoeba_dir"):
            key.pop(volatile)
        return key

    def _resume(self) -> None:
        path = self._checkpoint_path()
        if not path.exists():
            return
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["config"] != self._config_key():
            raise ValueError(f"{path} was written with another configuration; use a new work dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step, self.history, self.seconds = state["step"], state["history"], state["seconds"]
        log.info("resumed from %s at step %d", path, self.step)

    def _checkpoint(self) -> None:
        _save_atomic(
            {
                "config": self._config_key(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": self.step,
                "history": self.history,
                "seconds": self.seconds,
            },
            self._checkpoint_path(),
        )

    def _tokens(self, texts: list[str]):
        return self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.config.model.max_len,
            return_tensors="pt",
        )

    def _encode(self, texts: list[str], chunk: int = 64) -> torch.Tensor:
        """Encode in length-sorted chunks (little padding), rows back in input order."""
        ids = self.tokenizer(texts, truncation=True, max_length=self.config.model.max_len)[
            "input_ids"
        ]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        parts = []
        for start in range(0, len(order), chunk):
            batch = self.tokenizer.pad(
                {"input_ids": [ids[i] for i in order[start : start + chunk]]}, return_tensors="pt"
            )
            parts.append(self.model(batch["input_ids"], batch["attention_mask"]))
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat(parts)[inverse]

    def total_steps(self) -> int:
        return self.config.mlm_steps + self.config.steps

    def mlm_step(self, head: torch.nn.Module) -> float:
        texts = [
            t
            for pair in self.corpus.batch(self._lang(), self.config.mlm_batch_size // 2, self.rng)
            for t in pair
        ]
        batch = self._tokens(texts)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        special = ids <= 3
        masked = (torch.rand(ids.shape) < 0.15) & ~special & mask.bool()
        inputs = ids.masked_fill(masked, self.tokenizer.mask_token_id)
        hidden = self.model.bert(input_ids=inputs, attention_mask=mask).last_hidden_state
        logits = head(hidden[masked])
        return torch.nn.functional.cross_entropy(logits, ids[masked])

    def _lang(self) -> str:
        langs = sorted(self.corpus.pairs)
        return langs[self.step % len(langs)]

    def ranking_step(self) -> torch.Tensor:
        pairs = self.corpus.batch(self._lang(), self.config.batch_size, self.rng)
        src = self._encode([xx for _, xx in pairs])
        tgt = self._encode([en for en, _ in pairs])
        return additive_margin_ranking_loss(src, tgt, self.config.margin, self.config.scale)

    def evaluate(self) -> dict:
        if not self.config.tatoeba_dir:
            return {}
        from mining.evaluation.tatoeba import tatoeba_score

        encoder = self.as_encoder()
        scores = {}
        for lang in sorted(self.corpus.pairs):
            code = TATOEBA_CODES.get(lang, lang)
            scores[code] = round(
                tatoeba_score(encoder, Path(self.config.tatoeba_dir), code).mean, 4
            )
        self.model.train()
        return scores

    def as_encoder(self):
        """The model in training, wrapped in the Encoder interface (for evaluation)."""
        from mining.encoders.base import Encoder

        trainer = self

        class _Live(Encoder):
            name, dim, max_seq_length = (
                "training",
                self.config.model.hidden,
                self.config.model.max_len,
            )

            def encode(self, texts, batch_size=256):
                trainer.model.eval()
                out = []
                with torch.inference_mode():
                    for i in range(0, len(texts), batch_size):
                        chunk = [opencc_t2s(t) for t in texts[i : i + batch_size]]
                        out.append(trainer._encode(chunk).numpy())
                return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

        return _Live()

    def train(self) -> list[dict]:
        config, total = self.config, self.total_steps()
        head = None
        if config.mlm_steps:
            head = torch.nn.Linear(config.model.hidden, config.model.vocab_size, bias=True)
            head.weight = self.model.bert.embeddings.word_embeddings.weight
            self.optimizer.add_param_group({"params": [head.bias]})
        self.model.train()
        losses, started, window_start = [], time.monotonic(), time.monotonic()
        while self.step < total:
            stage = "mlm" if self.step < config.mlm_steps else "rank"
            if self.step == config.mlm_steps:
                losses = []  # loss averages are per stage
            stage_step = self.step if stage == "mlm" else self.step - config.mlm_steps
            stage_total = config.mlm_steps if stage == "mlm" else config.steps
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(stage_step, config, stage_total)
            loss = self.mlm_step(head) if stage == "mlm" else self.ranking_step()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            losses.append(loss.item())
            self.step += 1
            if self.step % 50 == 0:
                elapsed = time.monotonic() - window_start
                window_start = time.monotonic()
                rate = 50 / elapsed
                log.info(
                    "%s step %d/%d loss %.4f (%.2f steps/s, ETA %.0f min)",
                    stage,
                    self.step,
                    total,
                    np.mean(losses[-50:]),
                    rate,
                    (total - self.step) / rate / 60,
                )
            done = self.step == total
            if stage == "rank" and (self.step - config.mlm_steps) % config.eval_every == 0 or done:
                self.seconds += time.monotonic() - started
                started = time.monotonic()
                entry = {
                    "step": self.step,
                    "stage": stage,
                    "loss": float(np.mean(losses[-50:])),
                    "minutes": round(self.seconds / 60, 2),
                    **self.evaluate(),
                }
                self.history.append(entry)
                log.info("eval %s", json.dumps(entry))
            if self.step % config.checkpoint_every == 0 or done:
                self.seconds += time.monotonic() - started
                started = time.monotonic()
                self._checkpoint()
        return self.history

    def export(self, folder: Path, card: dict) -> None:
        export_labse_layout(self.model, self.tokenizer, folder, card)

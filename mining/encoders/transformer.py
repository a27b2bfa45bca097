"""Transformer sentence encoders: the sentence-transformers directory layout (LaBSE and others)
or a plain transformers model with a chosen pooling.

LaBSE's reference pipeline is BERT -> [CLS] token -> Dense(768, 768, tanh) -> L2 normalisation,
with max_seq_length 256; it is read from `modules.json` and the module folders, not hard-coded.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from mining.encoders.base import Encoder

log = logging.getLogger("ccmine")
_ACTIVATIONS = {
    "torch.nn.modules.activation.Tanh": torch.tanh,
    "torch.nn.modules.linear.Identity": lambda x: x,
}


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _load_weights(folder: str) -> dict[str, torch.Tensor]:
    safetensors_path = os.path.join(folder, "model.safetensors")
    if os.path.exists(safetensors_path):
        from safetensors.torch import load_file

        return load_file(safetensors_path)
    return torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu")


class DenseHead(torch.nn.Module):
    """sentence-transformers' Dense module: linear layer and activation."""

    def __init__(self, folder: str):
        super().__init__()
        config = _read_json(os.path.join(folder, "config.json"))
        self.linear = torch.nn.Linear(
            config["in_features"], config["out_features"], bias=config.get("bias", True)
        )
        self.linear.load_state_dict(
            {k.removeprefix("linear."): v for k, v in _load_weights(folder).items()}
        )
        name = config.get("activation_function", "torch.nn.modules.activation.Tanh")
        if name not in _ACTIVATIONS:
            raise ValueError(f"{folder}: unsupported activation {name}")
        self.activation = _ACTIVATIONS[name]
        self.out_features = config["out_features"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


# Models whose constructor can leave out the pooler (a dense layer on [CLS] that ccmine never
# uses: it pools hidden states itself).
POOLER_OPTIONAL = ("bert", "roberta", "xlm-roberta", "camembert", "electra")


def _has_pooler_weights(transformer_dir: str) -> bool:
    """Whether the checkpoint stores pooler weights (True when it cannot tell)."""
    path = os.path.join(transformer_dir, "model.safetensors")
    if not os.path.exists(path):
        return True
    from safetensors import safe_open

    with safe_open(path, framework="pt") as weights:
        return any(".pooler." in f".{key}" for key in weights.keys())


def _load_model(auto_model, transformer_dir: str):
    """The model, built without a pooler when its checkpoint has none (the bundled encoder), so
    that transformers has no missing weights to report; other models load as they are, with
    whatever transformers has to say. No progress bar for a local load."""
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    kwargs = {}
    model_type = AutoConfig.from_pretrained(transformer_dir).model_type
    if model_type in POOLER_OPTIONAL and not _has_pooler_weights(transformer_dir):
        kwargs["add_pooling_layer"] = False
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return auto_model.from_pretrained(transformer_dir, **kwargs)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


class TransformerEncoder(Encoder):
    def __init__(
        self,
        path: str,
        name: str | None = None,
        device: str = "cpu",
        pooling: str | None = None,
        normalize: bool = True,
        max_seq_length: int | None = None,
        text_transform: Callable[[str], str] | None = None,
    ):
        from transformers import AutoModel, AutoTokenizer

        super().__init__()
        self.name = name or path
        self.device = torch.device(device)
        self.text_transform = text_transform
        modules = self._read_modules(path)
        transformer_dir = os.path.join(path, modules.get("Transformer", ""))
        self.tokenizer = AutoTokenizer.from_pretrained(transformer_dir)
        # Weights may be stored in float16 (the bundled encoder); compute in float32 unless on GPU.
        self.model = _load_model(AutoModel, transformer_dir).float().eval()
        st_config_path = os.path.join(transformer_dir, "sentence_bert_config.json")
        st_config = _read_json(st_config_path) if os.path.exists(st_config_path) else {}
        self.max_seq_length = int(
            max_seq_length
            or st_config.get("max_seq_length")
            or min(self.tokenizer.model_max_length, 512)
        )
        self.pooling = pooling or self._pooling_from(path, modules)
        self.dense = DenseHead(os.path.join(path, modules["Dense"])) if "Dense" in modules else None
        if self.dense is not None:
            self.dense.float()
        self.normalize = normalize or "Normalize" in modules
        self.dim = self.dense.out_features if self.dense else self.model.config.hidden_size
        if self.device.type == "cuda":
            self.model.half()
            if self.dense is not None:
                self.dense.half()
        self.model.to(self.device)
        if self.dense is not None:
            self.dense.to(self.device)

    @staticmethod
    def _read_modules(path: str) -> dict[str, str]:
        """Module type (Transformer, Pooling, Dense, Normalize) -> folder, from modules.json."""
        modules_path = os.path.join(path, "modules.json")
        if not os.path.exists(modules_path):
            return {}
        return {m["type"].rsplit(".", 1)[-1]: m["path"] for m in _read_json(modules_path)}

    @staticmethod
    def _pooling_from(path: str, modules: dict[str, str]) -> str:
        if "Pooling" not in modules:
            return "mean"
        config = _read_json(os.path.join(path, modules["Pooling"], "config.json"))
        if config.get("pooling_mode_cls_token"):
            return "cls"
        if config.get("pooling_mode_mean_tokens"):
            return "mean"
        raise ValueError(f"{path}: only CLS or mean pooling is supported, got {config}")

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, cut to max_seq_length (the final special token kept)."""
        if self.text_transform is not None:
            texts = [self.text_transform(t) for t in texts]
        ids = self.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)[
            "input_ids"
        ]
        limit = self.max_seq_length
        long = [i for i, x in enumerate(ids) if len(x) > limit]
        self.stats["truncated"] += len(long)
        for i in long:
            ids[i] = ids[i][: limit - 1] + ids[i][-1:]
        return ids

    @torch.inference_mode()
    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
        hidden = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.dense is not None:
            pooled = self.dense(pooled)
        pooled = pooled.float()
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy()

    def _forward_splitting_on_oom(self, ids: list[list[int]]) -> np.ndarray:
        """Forward a batch; on GPU out-of-memory, halve it and retry (counted)."""
        try:
            return self._forward(ids)
        except torch.cuda.OutOfMemoryError:
            if len(ids) == 1:
                raise
            self.stats["oom_retries"] += 1
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = len(ids) // 2
            log.warning("out of memory at batch %d; retrying as two of %d", len(ids), half)
            return np.concatenate(
                [
                    self._forward_splitting_on_oom(ids[:half]),
                    self._forward_splitting_on_oom(ids[half:]),
                ]
            )

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, sort_by_length: bool = True
    ) -> np.ndarray:
        """Encode in batches of similar length (less padding), returned in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        ids = self._token_ids(texts)
        order = np.arange(len(ids))
        if sort_by_length:
            order = np.argsort([-len(x) for x in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._forward_splitting_on_oom([ids[i] for i in chunk])
        return out

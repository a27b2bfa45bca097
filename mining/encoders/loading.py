"""`--encoder` resolution: a short name (labse, bundled), a local directory or a hub id."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mining.encoders.base import Encoder

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
SHORT_NAMES = {
    "labse": "sentence-transformers/LaBSE",
    "bundled": str(BUNDLED_DIR),
}


HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def resolve_encoder(spec: str) -> str:
    """A local directory holding the encoder; hub ids are fetched (or read from the HF cache)."""
    target = os.path.expanduser(SHORT_NAMES.get(spec, spec))
    if os.path.isdir(target):
        return target
    if spec == "bundled":
        raise FileNotFoundError(f"bundled encoder not found at {target} (`make encoder` builds it)")
    if target.startswith((".", "/")) or not HUB_ID.match(target):
        raise FileNotFoundError(f"encoder not found: {spec} (no directory {target})")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(target)
    except Exception as exc:
        raise FileNotFoundError(
            f"encoder {spec}: could not get {target} from the Hugging Face hub "
            f"or its local cache ({type(exc).__name__})"
        ) from exc


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return device


ENCODER_CONFIG = "ccmine_encoder.json"


def read_encoder_config(encoder_dir: str) -> dict:
    """The encoder's `ccmine_encoder.json` (input transform, calibrated thresholds), or {}."""
    path = os.path.join(encoder_dir, ENCODER_CONFIG)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_encoder(spec: str, device: str = "auto", **kwargs) -> Encoder:
    """Load by short name, directory or hub id; `ccmine_encoder.json` there may name an input
    transform (e.g. OpenCC Traditional-to-Simplified for the bundled encoder)."""
    from mining.encoders.text_transforms import get_transform
    from mining.encoders.transformer import TransformerEncoder

    path = resolve_encoder(spec)
    if "text_transform" not in kwargs:
        kwargs["text_transform"] = get_transform(read_encoder_config(path).get("text_transform"))
    return TransformerEncoder(path, name=spec, device=pick_device(device), **kwargs)

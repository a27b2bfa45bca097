"""Sentence encoders: one small interface, loaded by short name, hub id or path."""

from mining.encoders.base import Encoder
from mining.encoders.loading import load_encoder, resolve_encoder

__all__ = ["Encoder", "load_encoder", "resolve_encoder"]

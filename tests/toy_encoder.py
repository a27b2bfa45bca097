"""A deterministic toy encoder (stopes-style): words map to concept vectors through a bilingual
lexicon, so translations embed identically and results can be asserted exactly."""

from __future__ import annotations

import numpy as np

from mining.encoders.base import Encoder

LEXICON = {
    "haus": "house",
    "hund": "dog",
    "katze": "cat",
    "baum": "tree",
    "auto": "car",
    "buch": "book",
    "rot": "red",
    "gross": "big",
    "klein": "small",
    "alt": "old",
    "neu": "new",
    "blau": "blue",
}


class ToyEncoder(Encoder):
    name, dim, max_seq_length = "toy", 64, 32

    def __init__(self):
        super().__init__()
        self._vectors: dict[str, np.ndarray] = {}

    def _concept(self, word: str) -> np.ndarray:
        word = LEXICON.get(word, word)
        if word not in self._vectors:
            seed = int.from_bytes(word.encode()[:8].ljust(8, b"\0"), "little")
            self._vectors[word] = np.random.default_rng(seed).normal(size=self.dim)
        return self._vectors[word]

    def encode(self, texts, batch_size=64):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = text.lower().strip(".!?").split() or ["<empty>"]
            vector = sum(self._concept(w) for w in words)
            out[i] = vector / np.linalg.norm(vector)
        return out

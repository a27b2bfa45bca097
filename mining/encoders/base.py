"""The encoder interface every stage and evaluation uses."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence

import numpy as np


class Encoder(ABC):
    """Maps sentences to L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int
    max_seq_length: int

    def __init__(self) -> None:
        # Running counts of notable events: "truncated" sentences, "oom_retries".
        self.stats: Counter = Counter()

    @abstractmethod
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32 array with unit-length rows."""

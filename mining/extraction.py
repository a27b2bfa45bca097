"""Document to language-identified sentences, with a reason for every sentence dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mining.html_text import REPLACEMENT, decode_payload, html_to_text
from mining.langid import LangGuess, LanguageIdentifier
from mining.scripts import length_units, script_fraction
from mining.sentence_split import split_sentences
from mining.text_normalize import normalize_text, text_hash
from mining.warc_records import Document

# A decoded document with more U+FFFD than this share of its characters is skipped whole.
UNDECODABLE_SHARE = 0.05


@dataclass(frozen=True)
class ExtractConfig:
    """Filters of the extract stage; the CLI options map one to one onto these fields."""

    langs: tuple[str, ...] = ("de", "en", "zh")
    min_lid_prob: float = 0.5
    lid_prob_by_lang: tuple[tuple[str, float], ...] = ()
    min_units: int = 3
    max_units: int = 200
    min_script_share: float = 0.5
    html_main_content: bool = True

    def lid_threshold(self, lang: str) -> float:
        return dict(self.lid_prob_by_lang).get(lang, self.min_lid_prob)


@dataclass
class Sentence:
    text: str
    lang: str
    lid_prob: float
    url: str
    record_id: str
    position: int
    hash: int
    source: str

    def as_row(self) -> dict:
        return dict(self.__dict__)


@dataclass
class DocumentResult:
    """Sentences kept from one document, counts of those dropped, or why the document was."""

    sentences: list[Sentence] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    skipped_reason: str | None = None
    candidates: int = 0
    # kept although their own LID probability is under the threshold: short sentences whose
    # label is the one the whole document confidently has
    vouched_by_document: int = 0


def document_text(doc: Document, main_content: bool = True) -> str:
    text = decode_payload(doc.payload, doc.charset, doc.is_html)
    return html_to_text(text, main_content) if doc.is_html else text


class SentenceExtractor:
    def __init__(self, config: ExtractConfig, lid: LanguageIdentifier):
        self.config = config
        self.lid = lid
        self._langs = frozenset(config.langs)

    def _candidates(self, text: str) -> list[tuple[str, LangGuess | None]]:
        """Each paragraph split with the splitter of its detected language: (sentence, its
        paragraph's guess where the sentence is the whole paragraph, else None). lid.176 gives
        the same text the same guess, so a one-sentence paragraph is identified once, not twice
        (37% of the sentences of bench_extract's pages)."""
        paragraphs = [p for p in (normalize_text(line) for line in text.splitlines()) if p]
        candidates = []
        for paragraph, guess in zip(paragraphs, self.lid.predict(paragraphs), strict=True):
            for piece in split_sentences(paragraph, guess.lang):
                if sentence := normalize_text(piece):
                    candidates.append((sentence, guess if sentence == paragraph else None))
        return candidates

    def _guesses(self, candidates: list[tuple[str, LangGuess | None]]) -> list[LangGuess]:
        """The candidates' guesses: those known from their paragraph, the others predicted."""
        unknown = iter(self.lid.predict([s for s, guess in candidates if guess is None]))
        return [guess or next(unknown) for _, guess in candidates]

    def _drop_reason(self, text: str, lang: str, prob: float, vouched: bool) -> str | None:
        cfg = self.config
        if lang not in self._langs:
            return "other_lang"
        if prob < cfg.lid_threshold(lang) and not vouched:
            return "low_lid_prob"
        units = length_units(text, lang)
        if units < cfg.min_units:
            return "too_short"
        if units > cfg.max_units:
            return "too_long"
        share = script_fraction(text, lang)
        if share is not None and share < cfg.min_script_share:
            return "wrong_script"
        return None

    def _unsure(self, guess: LangGuess) -> bool:
        """A wanted language, labelled with a probability under its threshold."""
        return guess.lang in self._langs and guess.prob < self.config.lid_threshold(guess.lang)

    def _vouched(self, guess: LangGuess, document: LangGuess | None) -> bool:
        """Whether the document vouches for a sentence's label that is under the threshold:
        lid.176 is unsure of short sentences ("Where do you live now?" is English at 0.22), but
        one whose top label is the language the whole document has, above the threshold, is
        in that language."""
        return (
            self._unsure(guess)
            and document is not None
            and guess.lang == document.lang
            and document.prob >= self.config.lid_threshold(document.lang)
        )

    def process(self, doc: Document) -> DocumentResult:
        result = DocumentResult()
        text = document_text(doc, self.config.html_main_content)
        if not text.strip():
            result.skipped_reason = "no_text"
            return result
        if text.count(REPLACEMENT) > UNDECODABLE_SHARE * len(text):
            result.skipped_reason = "undecodable"
            return result
        candidates = self._candidates(text)
        result.candidates = len(candidates)
        clean = [(i, c) for i, c in enumerate(candidates) if REPLACEMENT not in c[0]]
        result.dropped["bad_chars"] = len(candidates) - len(clean)
        guesses = self._guesses([c for _, c in clean])
        document = self.lid.predict([text])[0] if any(map(self._unsure, guesses)) else None
        for (position, (sentence, _)), guess in zip(clean, guesses, strict=True):
            vouched = self._vouched(guess, document)
            reason = self._drop_reason(sentence, guess.lang, guess.prob, vouched)
            if reason:
                result.dropped[reason] += 1
                continue
            result.vouched_by_document += vouched
            result.sentences.append(
                Sentence(
                    text=sentence,
                    lang=guess.lang,
                    lid_prob=guess.prob,
                    url=doc.url,
                    record_id=doc.record_id,
                    position=position,
                    hash=text_hash(sentence),
                    source=doc.source,
                )
            )
        result.dropped = +result.dropped
        return result

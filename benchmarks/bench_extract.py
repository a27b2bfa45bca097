"""Extract-stage throughput, LID overhead against bare fastText, and HTML extractor comparison.

    python benchmarks/bench_extract.py [--repeat 3]

Prints records/s and sentences/s of the library path (read, extract, split, LID, filter) on the
shared CommonCrawl samples and the bundled sample crawl, the wall time of the whole Beam stage,
the LID cost inside the stage as a ratio to plain fastText `predict` on the same sentences in the
same run, and Resiliparse against trafilatura (speed, sentences kept, boilerplate kept).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mining.extraction import ExtractConfig, SentenceExtractor, document_text
from mining.html_text import decode_payload
from mining.langid import LanguageIdentifier
from mining.warc_records import Document, iter_records

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "warc"
INPUTS = [
    SHARED / "resiliparse" / "CC-MAIN-2020-34-excerpt.warc.gz",
    SHARED / "dolma" / "sample-0000.warc.gz",
    SHARED / "whirlwind" / "whirlwind.warc.gz",
    SHARED / "whirlwind" / "whirlwind.warc.wet.gz",
    REPO / "data" / "sample" / "sample-crawl.warc.gz",
]
BOILERPLATE = [
    "Software in the Public Interest",
    "Developers' Corner",
    "Entwickler-Ecke",
    "开发者天地",
]


def read_documents() -> list[Document]:
    docs = []
    for path in INPUTS:
        with open(path, "rb") as stream:
            docs += [e for e in iter_records(stream, str(path)) if isinstance(e, Document)]
    return docs


def best_of(repeat: int, fn):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def bench_library(docs, extractor, repeat):
    def run():
        return [extractor.process(doc) for doc in docs]

    seconds, results = best_of(repeat, run)
    kept = sum(len(r.sentences) for r in results)
    split = sum(r.candidates for r in results)
    print(
        f"library path: {len(docs)} documents, {split} sentences split, {kept} kept "
        f"in {seconds:.2f}s"
    )
    print(f"  {len(docs) / seconds:.1f} documents/s, {split / seconds:.0f} sentences/s (1 core)")


def bench_stage(repeat):
    from pipelines import extract

    def run():
        with tempfile.TemporaryDirectory() as tmp:
            return extract.run([str(p) for p in INPUTS], tmp, ExtractConfig())

    seconds, stats = best_of(repeat, run)
    records = sum(stats["records_read"].values())
    print(
        f"Beam stage (DirectRunner): {records} records, {stats['sentences_split']} sentences "
        f"in {seconds:.2f}s: {records / seconds:.0f} records/s, "
        f"{stats['sentences_split'] / seconds:.0f} sentences/s"
    )


def bench_lid(docs, extractor, lid, repeat):
    sentences = [s for doc in docs for s, _ in extractor._candidates(document_text(doc))]
    import fasttext

    model = fasttext.load_model(lid.model_path)
    bare, _ = best_of(repeat, lambda: [model.predict(s, k=1) for s in sentences])
    ours, _ = best_of(repeat, lambda: lid.predict(sentences))
    print(
        f"LID on {len(sentences)} sentences: bare fastText predict {len(sentences) / bare:.0f}/s, "
        f"in-stage {len(sentences) / ours:.0f}/s, ratio {bare / ours:.2f} (goal >= 0.8)"
    )


def bench_html_extractors(docs, extractor, repeat):
    import trafilatura

    from mining.html_text import html_to_text

    html_docs = [decode_payload(d.payload, d.charset, True) for d in docs if d.is_html]

    def count(texts):
        kept = boiler = 0
        for text in texts:
            fake = Document("u", "r", "s", 0, "response", False, text.encode(), "utf-8")
            kept += len(extractor.process(fake).sentences)
            boiler += sum(text.count(b) for b in BOILERPLATE)
        return kept, boiler

    rows = []
    for name, fn in (
        ("resiliparse", html_to_text),
        ("resiliparse-all", lambda h: html_to_text(h, main_content=False)),
        ("trafilatura", lambda h: trafilatura.extract(h, include_comments=False) or ""),
    ):
        seconds, texts = best_of(repeat, lambda fn=fn: [fn(h) for h in html_docs])
        kept, boiler = count(texts)
        rows.append((name, seconds, kept, boiler))
    base = rows[0][1]
    print(f"HTML to text on {len(html_docs)} pages:")
    for name, seconds, kept, boiler in rows:
        print(
            f"  {name:15s} {len(html_docs) / seconds:7.1f} pages/s "
            f"({seconds / base:5.1f}x the time "
            f"of resiliparse), sentences kept {kept}, boilerplate strings kept {boiler}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lid = LanguageIdentifier()
    extractor = SentenceExtractor(ExtractConfig(), lid)
    docs = read_documents()
    bench_library(docs, extractor, args.repeat)
    bench_lid(docs, extractor, lid, args.repeat)
    bench_html_extractors(docs, extractor, args.repeat)
    bench_stage(1)


if __name__ == "__main__":
    main()

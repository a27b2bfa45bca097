"""Mine stage: kNN in both directions, margin scores, selection by mode, Parquet bitext.

Everything per sentence or per pair happens in Beam workers (pipelines/knn.py, select.py,
bitext.py); the driver checks the inputs, launches the pipelines and reads back metadata, Beam
counters and two small JSON files (the score histogram and the sample below the threshold):

1. search and selection: kNN over index shards, margins, best candidates, selection by mode;
   the selected pairs are written as blocks;
2. only for `max` when pairs are still undecided after the rounds of (1): more rounds, each
   pipeline continuing from the blocks the previous one left, up to `max_rounds` in all;
3. assembly: score cuts, texts, identical-text cut, Parquet parts.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from indexes import faiss_index, shards
from mining.embedding_store import read_parquet, shard_layout
from mining.encoders.calibration import Cut, cut_for
from mining.matching import MAX_ROUNDS
from pipelines import bitext, knn, select
from pipelines.bitext import BITEXT_SCHEMA
from pipelines.dataset_card import write_card
from pipelines.stage_dir import (
    StageError,
    StageWriter,
    output_ids,
    read_json,
    read_marker,
    require_complete,
    run_pipeline,
)

STAGE = "bitext"
NAMESPACE = "mine"
ROUNDS_PER_PIPELINE = 8  # measured: 3-4 rounds on real candidates (README, "Scaling out")


def default_cut(margin_kind: str, mode: str, encoder_dir: str | None) -> Cut:
    """The threshold and cosine floor stored with the encoder for this margin and mode
    (`ccmine calibrate --write`), or another mode's when this one has none (Cut.mode says)."""
    from mining.encoders.loading import read_encoder_config

    return cut_for(read_encoder_config(encoder_dir) if encoder_dir else {}, margin_kind, mode)


def neutral_threshold(margin_kind: str) -> float:
    """The margin's neutral point: 1.0 for ratio (as similar as the neighbourhood average)."""
    return 1.0 if margin_kind == "ratio" else 0.0


def read_bitext(bitext_dir: str) -> pa.Table:
    """All parts of a mined pair directory, best score first."""
    pattern = FileSystems.join(bitext_dir, "part-*.parquet")
    parts = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    tables = [read_parquet(path) for path in parts]
    return pa.concat_tables(tables) if tables else BITEXT_SCHEMA.empty_table()


def checked_inputs(run_dir: str, src: str, tgt: str):
    """Embedding layouts and index metadata of both languages, after checking that each index
    was built from the language's current embeddings and every index shard is there and
    complete."""
    emb_dir = require_complete(run_dir, "embeddings")
    index_dir = require_complete(run_dir, "indexes")
    embeddings = output_ids(run_dir, "embeddings", (src, tgt))
    layouts, metas = {}, {}
    for lang in (src, tgt):
        layouts[lang] = shard_layout(emb_dir, lang)
        metas[lang] = shards.check_language(
            index_dir, lang, embeddings[lang], layouts[lang].rows, layouts[lang].dim
        )
    return index_dir, layouts, metas


def _merge_counters(total: dict, more: dict) -> dict:
    for key, value in more.items():
        if isinstance(value, dict):
            _merge_counters(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value
    return total


def run(
    run_dir: str,
    src: str,
    tgt: str,
    k: int = 4,
    margin_kind: str = "ratio",
    mode: str = "max",
    threshold: float | None = None,
    max_score: float | None = None,
    min_cosine: float | None = None,
    candidates: int | None = None,
    beam_args: list[str] | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> dict:
    """Mine src-tgt pairs into RUN_DIR/bitext/SRC-TGT/ (its own stage directory)."""
    index_dir, layouts, metas = checked_inputs(run_dir, src, tgt)
    config = stage_config(
        run_dir, src, tgt, k, margin_kind, mode, threshold, max_score, min_cosine, candidates
    )
    candidates = config["candidates"]
    encoder_dir = read_marker(run_dir, "embeddings")["config"].get("encoder_dir")
    cut = default_cut(margin_kind, mode, encoder_dir)
    if cut.mode not in (None, mode) and (threshold is None or min_cosine is None):
        logging.warning(
            "mine: the encoder has no cut calibrated for --mode %s; using the one for --mode %s. "
            "Pass --threshold and --min-cosine, or pick them with ccmine calibrate --mode %s",
            mode,
            cut.mode,
            mode,
        )
    if threshold is None:
        threshold = cut.threshold if cut.threshold is not None else neutral_threshold(margin_kind)
    if min_cosine is None:
        min_cosine = cut.min_cosine
    writer = StageWriter(FileSystems.join(run_dir, STAGE), f"{src}-{tgt}")
    work = writer.path("_work")
    selected, undecided = FileSystems.join(work, "selected"), FileSystems.join(work, "undecided")
    rounds = min(ROUNDS_PER_PIPELINE, max_rounds)

    def search_and_select(pipeline):
        best = knn.build_best_candidates(
            pipeline, index_dir, layouts, metas, src, tgt, k, candidates, margin_kind, work
        )
        dirs = (work, selected, f"{undecided}-{rounds:03d}")
        select.build_selection(best, mode, layouts, src, tgt, rounds, dirs)

    counters = run_pipeline(writer, search_and_select, beam_args, NAMESPACE)
    done = rounds
    while mode == "max" and (left := select.list_blocks(f"{undecided}-{done:03d}")):
        if done >= max_rounds:
            writer.abandon()
            raise StageError(
                f"max mode: pairs still undecided after {done} rounds (--max-rounds); "
                "nothing was written"
            )
        more = min(ROUNDS_PER_PIPELINE, max_rounds - done)
        target = f"{undecided}-{done + more:03d}"
        _merge_counters(
            counters,
            run_pipeline(
                writer,
                lambda p, left=left, first=done + 1, more=more, target=target: (
                    select.build_continuation(
                        p, left, layouts, src, tgt, first, more, (work, selected, target)
                    )
                ),
                beam_args,
                NAMESPACE,
            ),
        )
        done += more

    blocks = select.list_blocks(selected)
    _merge_counters(
        counters,
        run_pipeline(
            writer,
            lambda p: bitext.build_assembly(
                p, blocks, layouts, src, tgt, threshold, max_score, min_cosine, writer.path(), work
            ),
            beam_args,
            NAMESPACE,
        ),
    )
    try:
        stats = stage_stats(counters, work, layouts, metas, src, tgt, threshold, min_cosine)
        stats["default_cut_mode"] = cut.mode  # the mode the encoder's cut was calibrated for
        if not stats["kept"]:
            bitext.write_table(BITEXT_SCHEMA.empty_table(), writer.path("part-00000.parquet"))
        FileSystems.delete([work])
        write_card(writer.path("README.md"), writer.final, run_dir, src, tgt, stats, config, metas)
    except BaseException:
        writer.abandon()
        raise
    writer.commit(stats, config)
    return stats


def stage_stats(counters, work, layouts, metas, src, tgt, threshold, min_cosine) -> dict:
    """The stage's stats.json: counts from the counters, histogram and sample from the files."""
    from mining.pair_filters import REASONS

    def optional_json(name, default):
        path = FileSystems.join(work, name)
        return read_json(path) if FileSystems.exists(path) else default

    accepted = [n for _, n in sorted(counters.get("accepted_in_round", {}).items())]
    stats = {
        "src_sentences": layouts[src].rows,
        "tgt_sentences": layouts[tgt].rows,
        "candidates": counters.get("candidates", 0),
        "kept": counters.get("kept", 0),
        "dropped": {reason: counters.get("dropped", {}).get(reason, 0) for reason in REASONS},
        "threshold": threshold,
        "min_cosine": min_cosine,
        "below_threshold_sample": optional_json("sample.json", []),
        "score_histogram": optional_json("histogram.json", bitext.histogram_json([0] * 40, None)),
        "index_shards": {lang: len(metas[lang]["shards"]) for lang in (src, tgt)},
        "search_items": counters.get("search_items", 0),
        "index_shard_loads": counters.get("index_shard_loads", 0),
    }
    if accepted:  # max mode: rounds that accepted pairs (later ones ran empty)
        used = max((i + 1 for i, n in enumerate(accepted) if n), default=0)
        stats["rounds"] = used
        stats["accepted_per_round"] = accepted[:used]
    if counters.get("candidates_without_neighbourhood"):
        stats["candidates_without_neighbourhood"] = counters["candidates_without_neighbourhood"]
    return stats


def stage_config(
    run_dir, src, tgt, k, margin_kind, mode, threshold, max_score, min_cosine, candidates
) -> dict:
    """`threshold` as asked for (None: the encoder's or the margin's default)."""
    return {
        "embeddings": output_ids(run_dir, "embeddings", (src, tgt)),
        "indexes": output_ids(run_dir, "indexes", (src, tgt)),
        "src": src,
        "tgt": tgt,
        "k": k,
        "margin": margin_kind,
        "mode": mode,
        "threshold": threshold,
        "max_score": max_score,
        "min_cosine": min_cosine,
        "candidates": candidates or faiss_index.CANDIDATES,
    }

"""Mine stage: kNN in both directions, margin scores, selection by mode, Parquet bitext.

Everything per sentence or per pair happens in Beam workers (pipelines/knn.py, select.py,
bitext.py); the driver checks the inputs, launches the pipelines and reads back metadata, Beam
counters and two small JSON files (the score histogram and the sample below the threshold):

1. search and selection: kNN over index shards, margins, best candidates, selection by mode;
   the selected pairs are written as blocks;
2. only for `max` when pairs are still undecided after the rounds of (1): more rounds, each
   pipeline continuing from the blocks the previous one left, up to `max_rounds` in all;
3. assembly: score cuts, texts, identical-text cut, Parquet parts.

Several pairs are mined in the same jobs (`run_pairs`) and the same steps: every element's key
starts with its pair's name, each pair counts in a namespace of its own, and each is still
written into, and committed as, its own stage directory. A job has as many steps for 100 pairs
as for one.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from indexes import faiss_index, shards
from mining.embedding_store import read_parquet, shard_layout
from mining.encoders.calibration import Cut, cut_for
from mining.inputs import matching_paths
from mining.matching import MAX_ROUNDS
from pipelines import bitext, knn, select
from pipelines.bitext import BITEXT_SCHEMA
from pipelines.counts import counters_to_stats
from pipelines.dataset_card import write_card
from pipelines.pair_context import PairContext, shard_groups, write_job
from pipelines.stage_dir import (
    StageError,
    StageWriter,
    output_ids,
    read_json,
    read_marker,
    remove_tree,
    require_complete,
    run_beam,
)

log = logging.getLogger("ccmine")
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
    parts = matching_paths(pattern)
    tables = [read_parquet(path) for path in parts]
    return pa.concat_tables(tables) if tables else BITEXT_SCHEMA.empty_table()


def checked_inputs(run_dir: str, langs: list[str]):
    """Embedding layouts and index metadata of the languages, after checking that each index
    was built from the language's current embeddings and every index shard is there and
    complete (each language once, however many pairs it is in: its embedding layout and shard
    records are a read each)."""
    emb_dir = require_complete(run_dir, "embeddings")
    index_dir = require_complete(run_dir, "indexes")
    embeddings = output_ids(run_dir, "embeddings", langs)
    layouts, metas = {}, {}
    for lang in langs:
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


@dataclass
class PairMining:
    """One pair's share of shared mining jobs: its inputs and cuts, the stage writer of its
    directory, the counters its steps reported and the rounds of max mode run so far."""

    src: str
    tgt: str
    config: dict
    layouts: dict
    metas: dict
    cuts: tuple  # (threshold, max score, min cosine)
    cut_mode: str | None  # the mode the encoder's cut was calibrated for
    writer: StageWriter
    counters: dict = field(default_factory=dict)
    rounds: int = 0

    @property
    def name(self) -> str:
        return f"{self.src}-{self.tgt}"

    @property
    def namespace(self) -> str:
        """Where its steps count, apart from the other pairs' in the same job."""
        return f"{NAMESPACE}.{self.name}"

    @property
    def context(self) -> PairContext:
        """What the workers of shared steps know of it."""
        out = self.writer.path()
        return PairContext(
            self.name,
            self.src,
            self.tgt,
            self.layouts,
            out,
            self.namespace,
            self.cuts,
            shard_groups(self.layouts),
        )


def mining_cuts(run_dir, margin_kind, mode, threshold, max_score, min_cosine):
    """((threshold, max score, min cosine), the mode the encoder's cut was calibrated for): the
    cuts asked for, the rest from the encoder's calibration (warned about when it was made for
    another mode) or the margin's neutral threshold."""
    encoder_dir = read_marker(run_dir, "embeddings")["config"].get("encoder_dir")
    cut = default_cut(margin_kind, mode, encoder_dir)
    if cut.mode not in (None, mode) and (threshold is None or min_cosine is None):
        log.warning(
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
    return (threshold, max_score, min_cosine), cut.mode


def run(run_dir: str, src: str, tgt: str, *args, **options) -> dict:
    """Mine src-tgt pairs into RUN_DIR/bitext/SRC-TGT/ (its own stage directory): `run_pairs`
    for one pair, with its options; returns the pair's stats."""
    return run_pairs(run_dir, [(src, tgt)], *args, **options)[(src, tgt)]


def run_pairs(
    run_dir: str,
    pairs: list[tuple[str, str]],
    k: int = 4,
    margin_kind: str = "ratio",
    mode: str = "max",
    threshold: float | None = None,
    max_score: float | None = None,
    min_cosine: float | None = None,
    candidates: int | None = None,
    beam_args: list[str] | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> dict[tuple[str, str], dict]:
    """Mine several pairs in shared Beam jobs, each pair into its own stage directory; returns
    {(src, tgt): stats}. The jobs are those of one pair (search and selection, max mode's later
    rounds, the parts), and each of their steps serves every pair. A job that fails fails every
    pair not yet written; a pair still undecided after `max_rounds` is not written while the
    others are, and its error is raised after them."""
    pairs = list(dict.fromkeys(pairs))
    prepared: list[PairMining] = []
    failed: dict[str, BaseException] = {}
    index_dir, layouts, metas = checked_inputs(run_dir, sorted({lang for p in pairs for lang in p}))
    cuts, cut_mode = mining_cuts(run_dir, margin_kind, mode, threshold, max_score, min_cosine)
    filters = (threshold, max_score, min_cosine, candidates)
    try:
        for src, tgt in pairs:
            config = stage_config(run_dir, src, tgt, k, margin_kind, mode, *filters)
            writer = StageWriter(FileSystems.join(run_dir, STAGE), f"{src}-{tgt}")
            pair_layouts = {lang: layouts[lang] for lang in (src, tgt)}
            pair_metas = {lang: metas[lang] for lang in (src, tgt)}
            prepared.append(
                PairMining(src, tgt, config, pair_layouts, pair_metas, cuts, cut_mode, writer)
            )
        rounds = min(ROUNDS_PER_PIPELINE, max_rounds)
        _run_shared(
            prepared,
            lambda p, job: build_search_and_selection(p, job, prepared[0].config, rounds),
            beam_args,
            index_dir=index_dir,
            metas=metas,
        )
        for pair in prepared:
            pair.rounds = rounds
        while mode == "max" and (left := _undecided(prepared, failed, max_rounds)):
            continuing = [p for p in prepared if p.name in left]
            done_rounds = continuing[0].rounds  # the same for all: they ran in the same jobs
            more = min(ROUNDS_PER_PIPELINE, max_rounds - done_rounds)
            _run_shared(
                continuing,
                lambda p, job, first=done_rounds + 1, more=more: select.build_continuation(
                    p, job, first, more
                ),
                beam_args,
            )
            for pair in continuing:
                pair.rounds += more
        _run_shared([p for p in prepared if p.name not in failed], bitext.build_assembly, beam_args)
        done = {}
        for pair in (p for p in prepared if p.name not in failed):
            try:
                others = [p.name for p in prepared if p is not pair]
                done[(pair.src, pair.tgt)] = _finish(run_dir, pair, others)
            except Exception as exc:
                pair.writer.abandon()
                failed[pair.name] = exc
    except BaseException:
        for pair in prepared:  # a committed pair's writer has nothing left to remove
            pair.writer.abandon()
        raise
    for pair in prepared:
        if pair.name in failed:
            raise failed[pair.name]
    return done


def run_in_groups(run_dir: str, pairs: list[tuple[str, str]], pairs_per_job: int | None, **options):
    """`run_pairs` on the pairs in groups of `pairs_per_job` (None: all in one), one group after
    another (stopping at the first group that fails); returns {(src, tgt): stats}."""
    mined = {}
    size = pairs_per_job or max(len(pairs), 1)
    for start in range(0, len(pairs), size):
        group = pairs[start : start + size]
        log.info("mine %s: running", ", ".join(f"{src}-{tgt}" for src, tgt in group))
        mined.update(run_pairs(run_dir, group, **options))
    return mined


def _undecided(prepared: list[PairMining], failed: dict, max_rounds: int) -> set[str]:
    """max mode, after a job: the pairs that have undecided blocks; a pair that has some and no
    rounds left is abandoned and its error put in `failed`."""
    left = set()
    for pair in (p for p in prepared if p.name not in failed):
        blocks = select.list_blocks(pair.context.undecided(pair.rounds))
        if blocks and pair.rounds >= max_rounds:
            pair.writer.abandon()
            failed[pair.name] = StageError(
                f"{pair.name}: max mode: pairs still undecided after {pair.rounds} rounds "
                "(--max-rounds); nothing was written"
            )
        elif blocks:
            left.add(pair.name)
    return left


def _run_shared(pairs: list[PairMining], build, beam_args, **inputs) -> None:
    """One Beam job holding the pairs' steps, build(pipeline, job), where job is the path of the
    MineJob (the pairs and `inputs`) its steps read; adds each pair's counters to its own."""
    if not pairs:
        return
    # The pairs share each language's layout object, so the file holds it once.
    contexts = [pair.context for pair in pairs]
    job = write_job(pairs[0].context.work, f"job-{uuid.uuid4().hex[:8]}", contexts, **inputs)
    result = run_beam(lambda pipeline: build(pipeline, job), beam_args)
    for pair in pairs:
        _merge_counters(pair.counters, counters_to_stats(result, pair.namespace))


def build_search_and_selection(pipeline, job, config, rounds) -> None:
    """Every pair's kNN search and selection by `config`'s mode in one set of steps (the pairs
    share every option), `rounds` rounds for max mode; `job`: the path of the job's MineJob."""
    c = config
    best = knn.build_best_candidates(pipeline, job, c["k"], c["candidates"], c["margin"])
    select.build_selection(best, c["mode"], job, rounds)


def _finish(run_dir: str, pair: PairMining, mined_with: list[str]) -> dict:
    """The pair's stats, dataset card and commit, once its parts are written."""
    threshold, _, min_cosine = pair.cuts
    stats = stage_stats(
        pair.counters,
        pair.context.work,
        pair.layouts,
        pair.metas,
        pair.src,
        pair.tgt,
        threshold,
        min_cosine,
    )
    stats["default_cut_mode"] = pair.cut_mode
    stats["mined_with"] = mined_with  # the other pairs whose steps shared its jobs
    if not stats["kept"]:
        bitext.write_table(BITEXT_SCHEMA.empty_table(), pair.writer.path("part-00000.parquet"))
    remove_tree(pair.context.work)
    write_card(
        pair.writer.path("README.md"),
        pair.writer.final,
        run_dir,
        pair.src,
        pair.tgt,
        stats,
        pair.config,
        pair.metas,
    )
    pair.writer.commit(stats, pair.config)
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

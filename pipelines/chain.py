"""`ccmine run`: extract, embed, index and mine in order, skipping stages that are complete for
the same configuration and input, and letting embed and index take over the languages whose
input did not change; `force` reruns everything. Several source languages are mined against one
target from one extraction, one embedding and one index of each language, and the pairs not
complete are mined in the same Beam jobs (all of them, or `pairs_per_job` to a job)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from mining.extraction import ExtractConfig
from mining.warc_records import DEFAULT_MAX_RECORD_BYTES
from pipelines import embed, extract, index, mine
from pipelines.report import write_report
from pipelines.stage_dir import STATS, StageError, is_complete, read_json, stage_path

log = logging.getLogger("ccmine")


@dataclass
class ChainConfig:
    paths: list[str]
    run_dir: str
    srcs: tuple[str, ...]
    tgt: str = "en"
    encoder: str = "muse"
    extract: ExtractConfig | None = None
    lid_model: str | None = None
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    strict: bool = False  # stop at the first damaged input
    device: str = "auto"
    batch_size: int = 64
    dtype: str = "float16"
    index_args: dict = field(default_factory=dict)
    k: int = 4
    margin: str = "ratio"
    mode: str = "max"
    threshold: float | None = None
    max_score: float | None = None
    min_cosine: float | None = None
    candidates: int | None = None  # IVF-PQ: faiss_index.CANDIDATES
    force: bool = False
    beam_args: list[str] = field(default_factory=list)
    pairs_per_job: int | None = None  # pairs whose mining shares Beam jobs (None: all)


def run_chain(c: ChainConfig) -> dict:
    """Run (or skip) each stage; returns {stage: "ran" | "skipped"} (the mine stage of each pair
    as "mine SRC-TGT"; "no SRC sentences" for a source language the input lacks) and writes the
    report."""
    extract_config = c.extract or ExtractConfig(langs=(*c.srcs, c.tgt))
    done: dict[str, str] = {}

    def skipped(name, run_dir, stage, config) -> bool:
        if not c.force and is_complete(run_dir, stage, config):
            log.info("%s: complete for this configuration, skipped", name)
            return True
        return False

    def step(name, run_dir, stage, config_fn, run_fn) -> str:
        if skipped(name, run_dir, stage, config_fn()):
            return "skipped"
        log.info("%s: running", name)
        run_fn()
        return "ran"

    done["extract"] = step(
        "extract",
        c.run_dir,
        "sentences",
        lambda: extract.stage_config(c.paths, extract_config, c.lid_model, c.max_record_bytes),
        lambda: extract.run(
            c.paths,
            c.run_dir,
            extract_config,
            c.lid_model,
            c.strict,
            c.max_record_bytes,
            c.beam_args,
        ),
    )
    srcs = with_sentences(c.run_dir, c.srcs, c.tgt)
    langs = [*srcs, c.tgt]
    done["embed"] = step(
        "embed",
        c.run_dir,
        "embeddings",
        lambda: embed.stage_config(c.run_dir, c.encoder, langs, c.dtype),
        lambda: embed.run(
            c.run_dir,
            c.encoder,
            langs,
            c.device,
            c.batch_size,
            dtype=c.dtype,
            beam_args=c.beam_args,
            reuse=not c.force,
        ),
    )
    done["index"] = step(
        "index",
        c.run_dir,
        "indexes",
        lambda: index.stage_config(c.run_dir, langs, c.index_args),
        lambda: index.run(c.run_dir, langs, c.index_args, c.beam_args, reuse=not c.force),
    )
    mine_filters = {
        "threshold": c.threshold,
        "max_score": c.max_score,
        "min_cosine": c.min_cosine,
        "candidates": c.candidates,
    }

    mined = [src for src in c.srcs if src in srcs]
    statuses = {}
    for src in mined:
        config = mine.stage_config(c.run_dir, src, c.tgt, c.k, c.margin, c.mode, **mine_filters)
        pair = f"{src}-{c.tgt}"
        if skipped(f"mine {pair}", stage_path(c.run_dir, "bitext"), pair, config):
            statuses[src] = "skipped"
    pending = [src for src in mined if src not in statuses]
    mine.run_in_groups(
        c.run_dir,
        [(src, c.tgt) for src in pending],
        c.pairs_per_job,
        k=c.k,
        margin_kind=c.margin,
        mode=c.mode,
        **mine_filters,
        beam_args=c.beam_args,
    )
    statuses.update(dict.fromkeys(pending, "ran"))
    for src in c.srcs:
        done[f"mine {src}-{c.tgt}"] = statuses.get(src, f"no {src} sentences")
    done["report"] = write_report(c.run_dir, [(src, c.tgt) for src in c.srcs])
    return done


def with_sentences(run_dir: str, srcs, tgt: str) -> list[str]:
    """The source languages the extract stage kept sentences of, with a warning for each other
    one; a StageError when there is nothing to mine (no target sentences, or none in any source
    language)."""
    kept = read_json(FileSystems.join(stage_path(run_dir, "sentences"), STATS))["sentences_kept"]
    if not kept.get(tgt):
        raise StageError(f"no {tgt} sentences in the input: nothing to mine against")
    found = [src for src in srcs if kept.get(src)]
    if not found:
        raise StageError(f"no {', '.join(srcs)} sentences in the input: nothing to mine")
    for src in srcs:
        if src not in found:
            log.warning("extract: no %s sentences in the input; %s-%s is not mined", src, src, tgt)
    return found

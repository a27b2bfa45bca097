"""Stage outputs that commit atomically: a temporary place, then a marker recording the config.

Local run directories are built in `RUN/.STAGE.tmp-*` and renamed into place; on object stores
(gs://, s3://), which cannot rename a directory, files are written in place and the marker comes
last. Either way a stage directory without its marker is incomplete.

A resumable stage (embed) records its configuration in the temporary place and keeps it when it
fails or is killed; a rerun with the same configuration continues there, reusing the work
units (shards) that were finished and recorded under `_units/`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import time
import uuid

from apache_beam.io.filesystems import FileSystems

from mining.json_files import DamagedJson, read_json, write_json
from mining.whole_files import delete_files, remove_partials

log = logging.getLogger("ccmine")

MARKER = "_SUCCESS.json"
STATS = "stats.json"
RESUME = "_resume.json"  # the configuration a resumable stage's temporary place was made for
UNITS = "_units"  # records of the finished work units of a resumable stage


class StageError(Exception):
    """A stage cannot go on for a reason the user can fix; the CLI prints it in one line."""


def _is_local(path: str) -> bool:
    return "://" not in path


def stage_path(run_dir: str, stage: str) -> str:
    return FileSystems.join(run_dir, stage)


def _under(path: str, limit: int | None = None) -> list[str]:
    """The files under a directory of an object store (`limit`: at most that many)."""
    pattern = FileSystems.join(path, "**")
    return [m.path for m in FileSystems.match([pattern], [limit])[0].metadata_list]


def tree_exists(path: str) -> bool:
    """Whether a directory (on an object store: anything under its prefix) exists. Beam's
    `exists` on Cloud Storage asks for an object of that very name, which a directory is not."""
    return os.path.exists(path) if _is_local(path) else bool(_under(path, 1))


def remove_tree(path: str) -> None:
    """Deletes a directory and everything under it. Beam's `delete` of a Cloud Storage path
    without a trailing slash deletes only an object of that very name, so on an object store
    this deletes what is listed under the prefix."""
    if _is_local(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        delete_files(_under(path))


def read_marker(run_dir: str, stage: str) -> dict | None:
    """The stage's marker, or None when it has none (the stage is incomplete). Markers are
    written whole; one damaged since (not JSON) is named in a warning and counts as none."""
    path = FileSystems.join(stage_path(run_dir, stage), MARKER)
    if not FileSystems.exists(path):
        return None
    try:
        return read_json(path)
    except DamagedJson as exc:
        log.warning("%s; the stage counts as incomplete", exc)
        return None


def is_complete(run_dir: str, stage: str, config: dict) -> bool:
    """True when the stage finished with this configuration, or with the same one for more
    languages: a language's sentences, embeddings and index do not depend on the others kept.
    `langs` is a list, or {language: id of its input} for a stage that reads per language."""
    marker = read_marker(run_dir, stage)
    return marker is not None and covers(marker["config"], config)


def covers(done: dict, wanted: dict) -> bool:
    """Whether output made with config `done` holds what config `wanted` asks for: the same
    configuration, for the same languages or more (with the same inputs, where recorded)."""
    done, wanted = json.loads(json.dumps(done)), json.loads(json.dumps(wanted))
    have, asked = done.get("langs"), wanted.get("langs")
    if isinstance(have, dict) and isinstance(asked, dict):
        held = asked.items() <= have.items()
    elif isinstance(have, list) and isinstance(asked, list):
        held = set(asked) <= set(have)
    else:
        held = have == asked
    return held and {**done, "langs": None} == {**wanted, "langs": None}


def reusable_langs(run_dir: str, stage: str, config: dict) -> list[str]:
    """The languages of `config` whose output the stage's complete output already holds: made
    with the same configuration from the same input. A stage reruns only the others."""
    marker = read_marker(run_dir, stage)
    if marker is None:
        return []
    return [
        lang
        for lang, input_id in config["langs"].items()
        if covers(marker["config"], {**config, "langs": {lang: input_id}})
    ]


def output_ids(run_dir: str, stage: str, langs) -> dict[str, str]:
    """{language: id of what a completed stage holds for it}: the content id the stage
    recorded for that language (equal ids, equal output), or else the stage's run id (output
    dropped in by hand records none)."""
    marker = read_marker(run_dir, stage)
    if marker is None:
        raise FileNotFoundError(f"{stage_path(run_dir, stage)} is incomplete")
    recorded = marker.get("outputs", {})
    return {lang: recorded.get(lang, marker["run_id"]) for lang in langs}


def output_stats(run_dir: str, stage: str, key: str, langs: list[str]) -> dict:
    """{language: its entry under `key` in a completed stage's stats}, for the languages a
    rerun takes over (read before the rerun replaces the output)."""
    if not langs:
        return {}
    entries = read_json(FileSystems.join(stage_path(run_dir, stage), STATS))[key]
    return {lang: entries[lang] for lang in langs}


def content_id(*parts) -> str:
    """A short id of JSON-able parts: what a language's output was made from."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def require_complete(run_dir: str, stage: str) -> str:
    """The stage directory, or a clear error if that stage has not completed."""
    if read_marker(run_dir, stage) is None:
        raise FileNotFoundError(
            f"{stage_path(run_dir, stage)} is missing or incomplete (no {MARKER}): "
            f"run `ccmine {stage_command(stage)}` first"
        )
    return stage_path(run_dir, stage)


def stage_command(stage: str) -> str:
    return {"sentences": "extract", "embeddings": "embed", "indexes": "index"}.get(stage, stage)


# The local runner: Beam's FnApiRunner, pinned. Beam 2.77's DirectRunner first tries the Prism
# runner, which it downloads from GitHub (offline it logs the failure and falls back; online
# ccmine would run on another runner, whose metric names differ). Beam's advice is to pin the
# FnApiRunner where the Prism default does not suit a pipeline.
LOCAL_RUNNERS = ("DirectRunner", "SwitchingDirectRunner")


def pipeline_options(beam_args: list[str] | None):
    """Beam options from the arguments a stage did not know; no --runner (or DirectRunner)
    means the FnApiRunner, any other runner is passed through."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions(beam_args or [])
    standard = options.view_as(StandardOptions)
    if standard.runner is None or standard.runner in LOCAL_RUNNERS:
        standard.runner = "FnApiRunner"
    return options


def run_beam(build, beam_args: list[str] | None):
    """Build (build(pipeline)) and run a Beam pipeline to its end; returns its result."""
    import apache_beam as beam

    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    build(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def run_pipeline(writer: StageWriter, build, beam_args: list[str] | None, namespace: str) -> dict:
    """Build (build(pipeline)) and run a Beam pipeline that writes into `writer`'s place, and
    return its counters; on any failure the temporary output is removed before re-raising."""
    from pipelines.counts import counters_to_stats

    try:
        result = run_beam(build, beam_args)
    except BaseException:
        writer.abandon()
        raise
    return counters_to_stats(result, namespace)


class StageWriter:
    """Where a stage writes while it runs, and the commit that makes its output visible.

    With `resume` (the stage's configuration), an unfinished place made for the same
    configuration is continued (`resumed`), and a failure keeps the place for the next run.
    `keep`: paths inside the stage's current output (a reused language's directory) that the
    new output takes over unchanged: hard-linked (or copied) into a local place; on an object
    store, where the output is rewritten in place, the only files not deleted.
    """

    def __init__(self, run_dir: str, stage: str, resume: dict | None = None, keep: list[str] = ()):
        self.run_dir = run_dir
        self.stage = stage
        self.final = stage_path(run_dir, stage)
        self.started = time.time()
        self.resume = json.loads(json.dumps(resume)) if resume is not None else None
        self.resumed = False
        if _is_local(run_dir):
            os.makedirs(run_dir, exist_ok=True)
            self.work = self._unfinished_local() or os.path.join(
                run_dir, f".{stage}.tmp-{uuid.uuid4().hex[:8]}"
            )
            os.makedirs(self.work, exist_ok=True)
            for path in keep:
                _link_tree(os.path.join(self.final, path), os.path.join(self.work, path))
        else:
            self.work = self.final
            self.resumed = self._made_for_this(self.final) and read_marker(run_dir, stage) is None
            if tree_exists(self.final) and not self.resumed:
                self._clear_remote(keep)
        if self.resume is not None and not self.resumed:
            write_json(self.path(RESUME), self.resume)

    def _clear_remote(self, keep) -> None:
        """Delete the current output but the kept paths, the marker first: from then on the
        stage is incomplete."""
        marker = self.path(MARKER)
        if FileSystems.exists(marker):
            FileSystems.delete([marker])
        kept = [FileSystems.join(self.final, path).rstrip("/") for path in keep]
        doomed = [
            path
            for path in _under(self.final)
            if not any(path == k or path.startswith(k + "/") for k in kept)
        ]
        delete_files(doomed)

    def _made_for_this(self, place: str) -> bool:
        path = FileSystems.join(place, RESUME)
        if self.resume is None or not FileSystems.exists(path):
            return False
        try:
            return read_json(path) == self.resume
        except ValueError as exc:  # damaged (a run killed while writing it): start afresh
            log.warning("%s: not resuming: %s", self.stage, exc)
            return False

    def _unfinished_local(self) -> str | None:
        """A killed run's place for this configuration; others of this stage are removed."""
        if self.resume is None:
            return None
        found = None
        for place in sorted(glob.glob(os.path.join(self.run_dir, f".{self.stage}.tmp-*"))):
            if found is None and self._made_for_this(place):
                found = place
                self.resumed = True
                remove_partials(place)  # files a killed writer had not finished
            else:
                shutil.rmtree(place, ignore_errors=True)
        return found

    def path(self, *parts: str) -> str:
        return FileSystems.join(self.work, *parts)

    def commit(self, stats: dict, config: dict, outputs: dict | None = None) -> str:
        """Write the stats and, last, the marker. `outputs`: {language: content id of what the
        stage wrote for it}, which the stages reading this output record as their input."""
        stats = {**stats, "seconds": round(time.time() - self.started, 3)}
        write_json(self.path(STATS), stats)
        from mining import __version__

        marker = {
            "stage": self.stage,
            "ccmine_version": __version__,
            "config": config,
            "time": time.time(),
            "run_id": uuid.uuid4().hex,
        }
        if outputs is not None:
            marker["outputs"] = outputs
        if FileSystems.exists(self.path(RESUME)):
            FileSystems.delete([self.path(RESUME)])
        remove_tree(self.path(UNITS))
        write_json(self.path(MARKER), marker)
        if self.work != self.final:
            if os.path.exists(self.final):
                shutil.rmtree(self.final)
            os.replace(self.work, self.final)
        return self.final

    def abandon(self) -> None:
        """After a failure: the temporary place is removed, unless the stage can resume there."""
        if self.resume is not None:
            return
        if self.work != self.final and os.path.exists(self.work):
            shutil.rmtree(self.work, ignore_errors=True)


def _link_tree(source: str, target: str) -> None:
    """Hard-link (or, across file systems, copy) a file or a directory's files to `target`;
    files already there (a resumed place) are left."""
    files = (
        [source]
        if os.path.isfile(source)
        else glob.glob(os.path.join(source, "**", "*"), recursive=True)
    )
    for path in files:
        if os.path.isdir(path):
            continue
        to = os.path.join(target, os.path.relpath(path, source)) if path != source else target
        if os.path.exists(to):
            continue
        os.makedirs(os.path.dirname(to), exist_ok=True)
        try:
            os.link(path, to)
        except OSError:
            shutil.copy2(path, to)

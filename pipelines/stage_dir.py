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
import json
import os
import shutil
import time
import uuid

from apache_beam.io.filesystems import FileSystems

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


def _write_json(path: str, payload: dict) -> None:
    with FileSystems.create(path) as out:
        out.write(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False).encode())


def read_json(path: str) -> dict:
    with FileSystems.open(path) as stream:
        return json.loads(stream.read().decode())


def read_marker(run_dir: str, stage: str) -> dict | None:
    path = FileSystems.join(stage_path(run_dir, stage), MARKER)
    return read_json(path) if FileSystems.exists(path) else None


def is_complete(run_dir: str, stage: str, config: dict) -> bool:
    """True when the stage finished with this configuration, or with the same one for more
    languages: a language's sentences, embeddings and index do not depend on the others kept."""
    marker = read_marker(run_dir, stage)
    if marker is None:
        return False
    done, wanted = marker["config"], json.loads(json.dumps(config))
    if "langs" in done and "langs" in wanted and set(wanted["langs"]) <= set(done["langs"]):
        done, wanted = {**done, "langs": None}, {**wanted, "langs": None}
    return done == wanted


def upstream_id(run_dir: str, stage: str) -> str:
    """The run_id of a completed stage, recorded by the stages that read its output."""
    marker = read_marker(run_dir, stage)
    if marker is None:
        raise FileNotFoundError(f"{stage_path(run_dir, stage)} is incomplete")
    return marker["run_id"]


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


def run_pipeline(writer: StageWriter, build, beam_args: list[str] | None, namespace: str) -> dict:
    """Build (build(pipeline)) and run a Beam pipeline that writes into `writer`'s place, and
    return its counters; on any failure the temporary output is removed before re-raising."""
    import apache_beam as beam

    from pipelines.counts import counters_to_stats

    try:
        pipeline = beam.Pipeline(options=pipeline_options(beam_args))
        build(pipeline)
        result = pipeline.run()
        result.wait_until_finish()
    except BaseException:
        writer.abandon()
        raise
    return counters_to_stats(result, namespace)


class StageWriter:
    """Where a stage writes while it runs, and the commit that makes its output visible.

    With `resume` (the stage's configuration), an unfinished place made for the same
    configuration is continued (`resumed`), and a failure keeps the place for the next run.
    """

    def __init__(self, run_dir: str, stage: str, resume: dict | None = None):
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
        else:
            self.work = self.final
            self.resumed = self._made_for_this(self.final) and read_marker(run_dir, stage) is None
            if FileSystems.exists(self.final) and not self.resumed:
                FileSystems.delete([self.final])
        if self.resume is not None and not self.resumed:
            _write_json(self.path(RESUME), self.resume)

    def _made_for_this(self, place: str) -> bool:
        path = FileSystems.join(place, RESUME)
        if self.resume is None or not FileSystems.exists(path):
            return False
        return read_json(path) == self.resume

    def _unfinished_local(self) -> str | None:
        """A killed run's place for this configuration; others of this stage are removed."""
        if self.resume is None:
            return None
        found = None
        for place in sorted(glob.glob(os.path.join(self.run_dir, f".{self.stage}.tmp-*"))):
            if found is None and self._made_for_this(place):
                found = place
                self.resumed = True
            else:
                shutil.rmtree(place, ignore_errors=True)
        return found

    def path(self, *parts: str) -> str:
        return FileSystems.join(self.work, *parts)

    def commit(self, stats: dict, config: dict) -> str:
        stats = {**stats, "seconds": round(time.time() - self.started, 3)}
        _write_json(self.path(STATS), stats)
        from mining import __version__

        marker = {
            "stage": self.stage,
            "ccmine_version": __version__,
            "config": config,
            "time": time.time(),
            "run_id": uuid.uuid4().hex,
        }
        for leftover in (self.path(RESUME), self.path(UNITS)):
            if FileSystems.exists(leftover):
                FileSystems.delete([leftover])
        _write_json(self.path(MARKER), marker)
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

"""The arguments a stage command passes to Beam: which of them no Beam option takes.

Beam drops such arguments with a log line of its own, so a misspelt or misplaced option
(`ccmine run --rows-per-shard 5`, an option of `ccmine embed`) would change nothing, unnoticed.
"""

from __future__ import annotations


def _is_number(arg: str) -> bool:
    try:
        float(arg)
    except ValueError:
        return False
    return True


def unknown_flags(args: list[str]) -> list[str]:
    """The flags in `args` (as written, without `=value`) that no Beam pipeline option defines;
    Beam takes no single-dash flag."""
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(args)
    known = set(options.get_all_options())
    unknown = set(options.get_all_options(retain_unknown_options=True)) - known
    flags = []
    for arg in args:
        if not arg.startswith("-") or _is_number(arg) or arg == "--":
            continue
        name = arg.split("=", 1)[0]
        if not name.startswith("--") or name[2:].replace("-", "_") in unknown:
            flags.append(name)
    return flags


def beam_flags() -> list[str]:
    """Every Beam pipeline option, as a flag (--temp_location)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return [f"--{name}" for name in PipelineOptions([]).get_all_options()]


def runs_here(args: list[str]) -> bool:
    """Whether the pipeline runs on one of Beam's local runners, where nothing but Beam reads
    its options (other runners and job services may take options of their own)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from pipelines.stage_dir import LOCAL_RUNNERS

    runner = PipelineOptions(args).view_as(StandardOptions).runner
    return runner in (None, *LOCAL_RUNNERS, "FnApiRunner")

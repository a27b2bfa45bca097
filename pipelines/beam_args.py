"""The arguments a stage command passes to Beam: which of them no Beam option takes.

Beam drops such arguments with a log line of its own, so a misspelt or misplaced option
(`ccmine run --rows-per-shard 5`, an option of `ccmine embed`) would change nothing, unnoticed.
"""

from __future__ import annotations


def _is_flag(arg: str) -> bool:
    """-x or --xx, not a negative number (a value) nor `--`."""
    if not arg.startswith("-") or arg == "--":
        return False
    try:
        float(arg)
    except ValueError:
        return True
    return False


def _left_by_beam(args: list[str]) -> list[str]:
    """What Beam's option parser leaves of `args`: flags no Beam option defines, the values
    after them, and arguments that are no option's value."""
    from apache_beam.options.pipeline_options import PipelineOptions

    parsers = []  # the parser Beam builds from every options class, handed to this hook
    PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)
    return parsers[0].parse_known_args(args)[1]


def unknown_arguments(args: list[str]) -> tuple[list[str], list[str]]:
    """(flags no Beam option defines, as written without `=value`; arguments that are no
    option's value), read as Beam reads them: an argument after an unknown flag is its value.
    Beam takes no single-dash flag."""
    rest = _left_by_beam(args)
    flags, strays = [], []
    position = 0
    while position < len(rest):
        arg = rest[position]
        if _is_flag(arg):
            flags.append(arg.split("=", 1)[0])
            takes_next = "=" not in arg and position + 1 < len(rest)
            if takes_next and not _is_flag(rest[position + 1]):
                position += 1  # its value
        elif arg != "--":
            strays.append(arg)
        position += 1
    return flags, strays


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

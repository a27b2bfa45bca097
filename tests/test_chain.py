"""`ccmine run` end to end on a cut-down sample crawl: skip/redo logic, report, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

from pipelines import mine
from pipelines.chain import ChainConfig, run_chain
from pipelines.mine import read_bitext
from pipelines.stage_dir import StageError
from tests.conftest import REPO
from tests.tiny_encoder import make_tiny_labse

pytestmark = pytest.mark.slow
SAMPLE = REPO / "data" / "sample" / "sample-crawl.warc.gz"
STEMS = ("contributing", "redistributing", "faqinfo")
STEPS = ("extract", "embed", "index", "mine de-en")


def cut_sample(path: Path) -> Path:
    """The response records of a few Debian FAQ pages (en, de, zh-cn) from the bundled sample."""
    with open(SAMPLE, "rb") as src, open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for record in ArchiveIterator(src):
            url = record.rec_headers.get_header("WARC-Target-URI") or ""
            if record.rec_type == "response" and any(f"/{stem}." in url for stem in STEMS):
                writer.write_record(record)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain")
    sample = cut_sample(tmp / "cut.warc.gz")
    encoder = make_tiny_labse(tmp / "tiny", ["debian package the for of and to"])
    return tmp, sample, encoder


def bitext(run_dir: Path, pair: str = "de-en"):
    rows = read_bitext(str(run_dir / "bitext" / pair)).to_pylist()
    return sorted((r["src_text"], r["tgt_text"], round(r["score"], 4)) for r in rows)


def test_chain_skips_complete_stages_and_reports(setup):
    tmp, sample, encoder = setup
    run_dir = tmp / "run"
    config = ChainConfig([str(sample)], str(run_dir), ("de",), encoder=str(encoder), threshold=0.9)
    done = run_chain(config)
    assert [done[s] for s in STEPS] == ["ran"] * 4
    first = bitext(run_dir)
    assert first, "no pairs mined"
    report = Path(done["report"]).read_text()
    assert "### Highest-scoring pairs" in report and "scores-de-en.png" in report
    assert (run_dir / "report" / "scores-de-en.png").stat().st_size > 1000

    again = run_chain(config)
    assert [again[s] for s in STEPS] == ["skipped"] * 4

    config.threshold = 1.0
    changed = run_chain(config)
    assert [changed[s] for s in STEPS] == ["skipped"] * 3 + ["ran"]
    assert len(bitext(run_dir)) <= len(first)

    config.force = True
    assert run_chain(config)["extract"] == "ran"


def test_several_sources_are_mined_from_one_extraction(setup, monkeypatch):
    """de-en and zh-en from one run: every language extracted, embedded and indexed once, and
    the de-en bitext the same as a run that mines de-en alone. The two pairs are mined in the
    same Beam jobs. Thai, which the input lacks, is reported and not mined; with no other
    source language there is nothing to mine. A run for zh alone then reruns nothing."""
    tmp, sample, encoder = setup
    alone = ChainConfig([str(sample)], str(tmp / "de"), ("de",), encoder=str(encoder))
    several = ChainConfig([str(sample)], str(tmp / "all"), ("de", "th", "zh"), encoder=str(encoder))
    for config in (alone, several):
        config.threshold = 0.9
    run_chain(alone)
    jobs = []
    run_beam = mine.run_beam
    monkeypatch.setattr(mine, "run_beam", lambda *args: jobs.append(1) or run_beam(*args))
    done = run_chain(several)
    assert len(jobs) == 2  # search and selection, then the parts, each for both pairs
    assert list(done) == ["extract", "embed", "index", "mine de-en", "mine th-en", "mine zh-en"] + [
        "report"
    ]
    assert done["mine de-en"] == done["mine zh-en"] == "ran"
    assert done["mine th-en"] == "no th sentences"
    run_dir = tmp / "all"
    spans = []  # when each pair's stage ran: they overlap
    for pair in ("de-en", "zh-en"):
        ended = json.loads((run_dir / "bitext" / pair / "_SUCCESS.json").read_text())["time"]
        seconds = json.loads((run_dir / "bitext" / pair / "stats.json").read_text())["seconds"]
        spans.append((ended - seconds, ended))
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]
    embedded = json.loads((run_dir / "embeddings" / "_SUCCESS.json").read_text())
    assert set(embedded["config"]["langs"]) == {"de", "zh", "en"}
    assert bitext(run_dir) == bitext(tmp / "de")
    zh = json.loads((run_dir / "bitext" / "zh-en" / "stats.json").read_text())
    assert zh["src_sentences"] > 0 and zh["kept"] == len(bitext(run_dir, "zh-en"))
    report = Path(done["report"]).read_text()
    assert report.count("### Highest-scoring pairs") == 2
    assert "Pairs mined in the same Beam jobs show the same jobs' seconds." in report
    assert "## th-en\n\nNo th sentences in the input: not mined." in report
    assert "| th-en | 0 | | | not mined | | |" in report
    row = f"| zh-en | {zh['src_sentences']:,} | {zh['tgt_sentences']:,} | {zh['candidates']:,} | "
    assert f"{row}{zh['kept']:,} | {zh['threshold']} | {zh['seconds']:.1f} |" in report
    assert (run_dir / "report" / "scores-zh-en.png").stat().st_size > 1000

    # A later run for fewer languages finds every stage complete: each language's sentences,
    # embeddings and index do not depend on the others.
    several.srcs = ("zh",)
    assert set(run_chain(several).values()) == {"skipped", done["report"]}
    assert (run_dir / "bitext" / "de-en" / "_SUCCESS.json").exists()
    # Its report names the pair asked for first, then the other pair the run holds.
    assert Path(done["report"]).read_text().startswith("# ccmine run report: zh-en, de-en\n")

    several.srcs = ("th",)
    with pytest.raises(StageError, match="^no th sentences in the input: nothing to mine$"):
        run_chain(several)


def test_adding_a_language_encodes_and_indexes_only_that_one(setup):
    """A de-en run asked for zh too: the extraction reruns (every input is read again), but de
    and en, whose sentences did not change, keep their embeddings and indexes and de-en is not
    mined again; the result equals a run for both from scratch."""
    tmp, sample, encoder = setup
    run_dir = tmp / "grown"
    config = ChainConfig([str(sample)], str(run_dir), ("de",), encoder=str(encoder))
    config.threshold = 0.9
    run_chain(config)
    de_shard = run_dir / "embeddings" / "lang=de" / "shard-00000.npy"
    before = de_shard.stat().st_ino
    config.srcs = ("de", "zh")
    done = run_chain(config)
    assert [done[s] for s in (*STEPS, "mine zh-en")] == ["ran"] * 3 + ["skipped", "ran"]
    embedded = json.loads((run_dir / "embeddings" / "stats.json").read_text())
    assert set(embedded["reused"]) == {"de", "en"}
    assert embedded["embedded"]["zh"] > 0 and set(embedded["embedded"]) == {"de", "en", "zh"}
    indexed = json.loads((run_dir / "indexes" / "stats.json").read_text())
    assert set(indexed["reused"]) == {"de", "en"} and set(indexed["indexes"]) == {"de", "en", "zh"}
    assert de_shard.stat().st_ino == before  # the same file, taken over
    scratch = ChainConfig([str(sample)], str(tmp / "scratch"), ("de", "zh"), encoder=str(encoder))
    scratch.threshold = 0.9
    run_chain(scratch)
    for pair in ("de-en", "zh-en"):
        assert bitext(run_dir, pair) == bitext(tmp / "scratch", pair)

    config.force = True
    done = run_chain(config)
    assert "reused" not in json.loads((run_dir / "embeddings" / "stats.json").read_text())


def test_killed_run_resumes_to_the_same_bitext(setup):
    tmp, sample, encoder = setup
    args = [
        "run",
        "--input",
        str(sample),
        "--src",
        "de",
        "--encoder",
        str(encoder),
        "--threshold",
        "0.9",
    ]
    command = [sys.executable, "-m", "pipelines.cli"]
    env = dict(os.environ)  # PYTHONPATH: the checkout and the network guard (conftest)
    reference = tmp / "uninterrupted"
    reference_run = subprocess.run(
        [*command, *args, "--output", str(reference)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert reference_run.returncode == 0, reference_run.stderr[-4000:]

    killed = tmp / "killed"
    process = subprocess.Popen(
        [*command, *args, "--output", str(killed)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list(killed.glob(".embeddings.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed / "sentences" / "_SUCCESS.json").exists()
    assert not (killed / "embeddings").exists()  # the interrupted stage left nothing visible

    result = subprocess.run(
        [*command, *args, "--output", str(killed)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "extract: skipped" in result.stdout and "embed: ran" in result.stdout
    assert bitext(killed) == bitext(reference)


def test_src_all_mines_every_language_the_encoder_covers(setup, tmp_path):
    """`--src all` with the bundled encoder (de, en, zh) mines de-en and zh-en; an encoder that
    declares no languages is a usage error; LaBSE's languages that the language-ID model does
    not know are named and left out (the run then stops at its missing input, before loading)."""
    from click.testing import CliRunner

    from pipelines.cli import cli

    _, sample, tiny = setup
    run = ["run", "--input", str(sample), "--output", str(tmp_path / "run"), "--src", "all"]
    result = CliRunner().invoke(cli, [*run, "--encoder", "bundled"])
    assert result.exit_code == 0, result.output
    assert "mine de-en: ran\nmine zh-en: ran\n" in result.output
    assert len(bitext(tmp_path / "run", "zh-en")) > 10

    result = CliRunner().invoke(cli, [*run, "--encoder", str(tiny)])
    assert result.exit_code == 2 and f"encoder '{tiny}' declares no languages" in result.stderr

    run[2] = str(tmp_path / "nowhere.warc.gz")
    result = CliRunner().invoke(cli, [*run, "--encoder", "labse"])
    assert result.exit_code == 2
    assert "the language-ID model does not know ha, haw, hmn, ig, mi, ny" in result.stderr
    assert "no input matches" in result.stderr

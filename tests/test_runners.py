"""The DirectRunner with several worker processes gives the same output as one process, and
`make mine LANG=de` runs the whole chain on the bundled sample."""

import subprocess

import pytest

from mining.extraction import ExtractConfig
from pipelines import extract
from pipelines.mine import read_bitext
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_multiprocess_direct_runner_matches_single_process(shared_data, tmp_path):
    path = [str(shared_data / "warc" / "resiliparse" / "CC-MAIN-2020-34-excerpt.warc.gz")]
    config = ExtractConfig(langs=("de", "en", "zh", "ru"))
    single = extract.run(path, str(tmp_path / "one"), config)
    multi = extract.run(
        path,
        str(tmp_path / "two"),
        config,
        beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    assert multi["sentences_kept"] == single["sentences_kept"]
    assert multi["records_read"] == single["records_read"]


def test_make_mine_on_the_bundled_sample(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        ["make", "mine", "LANG=de", f"OUT={out}"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"bitext: {out}/bitext/de-en/" in result.stdout
    rows = read_bitext(str(out / "bitext" / "de-en")).to_pylist()
    assert len(rows) > 1000  # 1,761 when measured
    # Pairs from translations of the same page: the sample's document alignment.
    same_page = [r["src_url"].rsplit(".", 2)[0] == r["tgt_url"].rsplit(".", 2)[0] for r in rows]
    assert sum(same_page) / len(rows) > 0.95  # 0.994 when measured
    assert (out / "report" / "index.md").exists()

"""`ccmine calibrate --write` on a small dev set: the cut of its margin and mode is stored,
the encoder's other cuts are kept."""

import json
import re
import shutil

import pytest
from click.testing import CliRunner

from mining.encoders.calibration import cut_for, stored_cuts
from mining.encoders.loading import BUNDLED_DIR, ENCODER_CONFIG
from pipelines.cli import cli

pytestmark = pytest.mark.slow


def write_dev(prefix, de, en, pairs: int):
    """A BUCC-style dev set: the first `pairs` lines are translations, the rest distractors."""
    de_lines = [f"de-{i:04d}\t{s}" for i, s in enumerate(de)]
    en_lines = [f"en-{i:04d}\t{s}" for i, s in enumerate(en)]
    prefix.with_suffix(".de").write_text("\n".join(de_lines) + "\n", encoding="utf-8")
    prefix.with_suffix(".en").write_text("\n".join(en_lines) + "\n", encoding="utf-8")
    gold = [f"de-{i:04d}\ten-{i:04d}" for i in range(pairs)]
    prefix.with_suffix(".gold").write_text("\n".join(gold) + "\n", encoding="utf-8")


def test_calibrate_write_adds_a_mode_and_keeps_the_others(tmp_path, shared_data):
    tatoeba = shared_data / "tatoeba" / "v1"
    de = (tatoeba / "tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()
    en = (tatoeba / "tatoeba.deu-eng.eng").read_text(encoding="utf-8").splitlines()
    (tmp_path / "dev").mkdir()
    prefix = tmp_path / "dev" / "de-en"
    # 150 translations; 50 German and 50 English sentences without theirs
    write_dev(prefix, de[:150] + de[200:250], en[:150] + en[300:350], 150)
    encoder = tmp_path / "encoder"
    shutil.copytree(BUNDLED_DIR, encoder)
    before = json.loads((encoder / ENCODER_CONFIG).read_text())
    args = ["calibrate", "--encoder", str(encoder), "--dev", str(prefix), "--device", "cpu"]
    result = CliRunner().invoke(cli, [*args, "--mode", "union", "--write"])
    assert result.exit_code == 0, result.output
    threshold = float(re.search(r"threshold ([\d.]+) \(ratio margin\)", result.output)[1])
    after = json.loads((encoder / ENCODER_CONFIG).read_text())
    assert cut_for(after, "ratio", "union").threshold == pytest.approx(threshold, abs=1e-4)
    assert stored_cuts(after, "ratio")["max"] == stored_cuts(before, "ratio")["max"]
    assert after["calibration"]["ratio"]["union"]["dev"]["de-en.de"]["f1"] > 0.5
    assert after["model_config"] == before["model_config"]

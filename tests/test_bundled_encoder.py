"""The committed bundled encoder: loads offline, meets a quality floor, and the miner agrees with
the brute-force definitions on its real embeddings."""

import numpy as np
import pytest

from mining.encoders import load_encoder
from mining.evaluation.tatoeba import read_pair, tatoeba_score
from mining.margin import select_pairs
from tests.test_margin import brute_force, neighbours


@pytest.fixture(scope="module")
def bundled():
    return load_encoder("bundled", device="cpu")


@pytest.mark.parametrize("lang,floor", [("deu", 0.7), ("cmn", 0.7)])
def test_tatoeba_floor(bundled, shared_data, lang, floor):
    score = tatoeba_score(bundled, shared_data / "tatoeba" / "v1", lang, limit=300)
    assert score.mean >= floor, score


def test_traditional_and_simplified_chinese_embed_alike(bundled):
    traditional, simplified = bundled.encode(["我們學習漢字。", "我们学习汉字。"])
    assert float(traditional @ simplified) > 0.999


def test_margin_on_real_embeddings_matches_brute_force(bundled, shared_data):
    de, en = read_pair(shared_data / "tatoeba" / "v1", "deu")
    x, y = bundled.encode(de[:150]), bundled.encode(en[:120])
    for kind, mode in (("ratio", "max"), ("distance", "intersect"), ("absolute", "forward")):
        pairs = select_pairs(*neighbours(x, y, 4), kind, mode)
        expected = brute_force(x, y, 4, kind, mode)
        np.testing.assert_allclose(pairs.score, [s for _, _, s in expected], atol=1e-5)
        found = {(int(s), int(t)) for s, t in zip(pairs.src, pairs.tgt, strict=True)}
        assert len(found ^ {(i, j) for i, j, _ in expected}) <= 2  # ties at float precision


def test_loading_reports_nothing_but_real_problems(tmp_path, capfd, caplog):
    """The bundled encoder has no pooler (ccmine never uses one) and loads without transformers'
    load report; a checkpoint that really lacks a weight still gets it. (The report goes to
    stderr, or to logging once logging is configured: both are read.)"""
    from safetensors.torch import load_file, save_file

    from tests.tiny_encoder import make_tiny_labse

    def said():
        out, err = capfd.readouterr()
        text = out + err + caplog.text
        caplog.clear()
        return text

    said()
    load_encoder("bundled", device="cpu")
    text = said()
    assert "LOAD REPORT" not in text and "MISSING" not in text
    assert "Loading weights" not in text

    broken = make_tiny_labse(tmp_path / "broken", ["hallo welt hello world"])
    weights = load_file(broken / "model.safetensors")
    del weights[next(k for k in weights if "layer.1.output.dense.weight" in k)]
    save_file(weights, broken / "model.safetensors")
    said()
    load_encoder(str(broken), device="cpu")
    text = said()
    assert "MISSING" in text and "layer.1.output.dense.weight" in text

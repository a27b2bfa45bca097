import gettext
import itertools
import random
import struct

import numpy as np
import pytest
import torch

from mining.bitext_readers import UnreadableBitext
from mining.encoder_training import sources
from mining.encoder_training.loss import additive_margin_ranking_loss
from mining.encoder_training.model import ModelConfig
from mining.encoder_training.prep import _catalog_string, overlap_key
from mining.encoder_training.trainer import Corpus, TrainConfig, Trainer
from tests.toy_encoder import LEXICON


def reference_loss(src, tgt, margin, scale):
    """Numpy reading of the LaBSE loss: both directions, additive margin on the positives."""
    sim = src @ tgt.T - margin * np.eye(len(src))
    logits = scale * sim

    def ce(rows):
        rows = rows - rows.max(axis=1, keepdims=True)
        return -np.mean(np.diag(rows) - np.log(np.exp(rows).sum(axis=1)))

    return (ce(logits) + ce(logits.T)) / 2


def test_loss_matches_definition_and_is_symmetric():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(8, 5))
    tgt = rng.normal(size=(8, 5))
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    tgt /= np.linalg.norm(tgt, axis=1, keepdims=True)
    s, t = torch.tensor(src), torch.tensor(tgt)
    ours = additive_margin_ranking_loss(s, t, margin=0.3, scale=20.0)
    assert abs(float(ours) - reference_loss(src, tgt, 0.3, 20.0)) < 1e-6
    assert abs(float(ours) - float(additive_margin_ranking_loss(t, s, 0.3, 20.0))) < 1e-6


def test_margin_makes_the_task_harder():
    x = torch.eye(4)
    assert additive_margin_ranking_loss(x, x, margin=0.3) > additive_margin_ranking_loss(
        x, x, margin=0.0
    )
    assert float(additive_margin_ranking_loss(x, x, margin=0.0, scale=50.0)) < 1e-6


def test_sources_parse(tmp_path):
    (tmp_path / "de-en").write_text(
        "# comment\nHaus {n}; Gebäude {n} | Häuser {pl} | Das Haus ist alt. :: house; building | "
        "houses | The house is old.\nkaputt | völlig kaputt :: broken\n",
        encoding="utf-8",
    )
    assert list(sources.ding(tmp_path / "de-en")) == [
        ("house", "Haus", False),
        ("houses", "Häuser", False),
        ("The house is old.", "Das Haus ist alt.", True),
    ]
    (tmp_path / "cedict").write_text(
        "# x\n漢字 汉字 [han4 zi4] /Chinese character/CL:個|个[ge4]/\n"
        "張 张 [Zhang1] /surname Zhang/\n張 张 [zhang1] /to open up/to spread/\n",
        encoding="utf-8",
    )
    assert sources.cedict(tmp_path / "cedict") == [
        ("Chinese character", "汉字"),
        ("to open up", "张"),
    ]


def write_mo(path, messages):
    """A minimal GNU .mo catalog (header plus messages, msgctxt joined with \\x04)."""
    messages = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    start = 7 * 4 + 16 * len(keys)
    offsets, pos = [], 0
    for k in keys:
        offsets.append((len(k.encode()), start + pos))
        pos += len(k.encode()) + 1
    spos = 0
    for k in keys:
        offsets.append((len(messages[k].encode()), start + len(ids) + spos))
        spos += len(messages[k].encode()) + 1
    header = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    table = b"".join(struct.pack("ii", n, o) for n, o in offsets)
    path.write_bytes(header + table + ids + strs)


def test_training_corpus_names_a_damaged_line(tmp_path):
    data = tmp_path / "train.tsv"
    data.write_text("de\tdeb\t1.0\tThe cat.\tDie Katze.\nde\tdeb\tmany\tA dog.\tEin Hund.\n")
    with pytest.raises(UnreadableBitext, match=r"train.tsv:2: expected lang, source, weight"):
        Corpus.load(str(data))
    data.write_text("de\tdeb\t1.0\tThe cat.\tDie Katze.\nde\tdeb\t3.0\tA dog.\tEin Hund.\n")
    corpus = Corpus.load(str(data))
    assert corpus.pairs["de"][1] == ("A dog.", "Ein Hund.")
    assert corpus.probs["de"].tolist() == [0.25, 0.75]


def test_prepare_encoder_data_names_a_missing_shared_file_in_one_line(tmp_path):
    from click.testing import CliRunner

    from pipelines.cli import cli

    args = ["prepare-encoder-data", "--shared", str(tmp_path), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"ccmine: error: [Errno 2] No such file or directory: '{tmp_path}/"
    )


def test_gettext_catalog_and_markup_filter(tmp_path):
    write_mo(
        tmp_path / "x.mo",
        {
            "CTX\x04Save the document": "Dokument speichern",
            "Open ~File": "~Datei öffnen",
            "%s files": "%s Dateien",
        },
    )
    pairs = dict(sources.gettext_catalog(tmp_path / "x.mo"))
    assert pairs["Save the document"] == "Dokument speichern"
    assert gettext.GNUTranslations  # the reader is the standard library's
    assert _catalog_string("~Datei öffnen") == "Datei öffnen"
    assert _catalog_string("%s Dateien") is None
    assert _catalog_string("Öffnen (&O)") == "Öffnen"


def test_overlap_key():
    assert overlap_key("Hallo  Welt !", "de") == "hallo welt!"
    assert overlap_key("我們 愛 漢字。", "zh") == "我们爱汉字。"


def toy_pairs(seed):
    """German-English phrase pairs over the toy lexicon: every set of 2 or 3 words, translated."""
    words = sorted(LEXICON)
    combos = [c for n in (2, 3) for c in itertools.combinations(words, n)]
    pairs = [(" ".join(LEXICON[w] for w in c), " ".join(c)) for c in combos]
    random.Random(seed).shuffle(pairs)
    return pairs


@pytest.fixture
def toy_corpus(tmp_path):
    pairs = toy_pairs(0)
    with open(tmp_path / "train.tsv", "w") as f:
        for en, de in pairs[:200]:
            f.write(f"de\ttoy\t1.0\t{en}\t{de}\n")
    return tmp_path, pairs[200:]


def accuracy(trainer, held_out):
    encoder = trainer.as_encoder()
    a = encoder.encode([de for _, de in held_out])
    b = encoder.encode([en for en, _ in held_out])
    return float(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(len(held_out))))


def test_tiny_training_lowers_loss_raises_accuracy_and_resumes(toy_corpus):
    folder, held_out = toy_corpus
    model = ModelConfig(vocab_size=300, hidden=64, layers=1, heads=2, ffn=128, max_len=16)
    config = TrainConfig(
        data=str(folder / "train.tsv"),
        work_dir=str(folder / "work"),
        steps=60,
        batch_size=32,
        lr=3e-3,
        warmup=5,
        eval_every=1000,
        checkpoint_every=30,
        model=model,
    )
    trainer = Trainer(config)
    before = accuracy(trainer, held_out)
    trainer.train()
    first = trainer.history[-1]["loss"]
    after = accuracy(trainer, held_out)
    assert after > before + 0.3, (before, after)  # on phrases never seen in training
    assert first < np.log(32)  # below chance for a batch of 32

    # A new trainer with more steps resumes at step 60 rather than starting over.
    config.steps = 90
    resumed = Trainer(config)
    assert resumed.step == 60
    resumed.train()
    assert resumed.step == 90 and resumed.history[-1]["loss"] < first + 0.5

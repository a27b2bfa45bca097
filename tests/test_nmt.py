"""nmt_eval: the data filters and report as units, and a CPU smoke run of every fairseq step."""

import gzip
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nmt_eval.data import load_pairs, split_valid
from nmt_eval.runner import NmtConfig, parse_generate, resolve_device, run, score, summary
from pipelines.cli import cli


def write_bitext(path, src, tgt, pairs, scores, cosines=None):
    columns = {
        "src_lang": [src] * len(pairs),
        "tgt_lang": [tgt] * len(pairs),
        "src_text": [p[0] for p in pairs],
        "tgt_text": [p[1] for p in pairs],
        "score": pa.array(scores, pa.float32()),
    }
    if cosines is not None:
        columns["cosine"] = pa.array(cosines, pa.float32())
    pq.write_table(pa.table(columns), path)


def test_score_filter_and_orientation(tmp_path):
    write_bitext(
        tmp_path / "a.parquet",
        "de",
        "en",
        [("Hallo Welt.", "Hello world."), ("Gut.", "Good."), ("", "Empty.")],
        [1.3, 1.01, 1.2],
    )
    en, de, counts = load_pairs(str(tmp_path), "en", "de", min_score=1.1)
    assert (en, de) == (["Hello world."], ["Hallo Welt."])
    assert counts == {
        "read": 3,
        "below_min_score": 1,
        "below_min_cosine": 0,
        "empty": 1,
        "kept": 1,
    }
    with pytest.raises(ValueError, match="de-en pairs, not en-zh"):
        load_pairs(str(tmp_path / "a.parquet"), "en", "zh")


def test_cosine_floor_counts_its_drops_and_spares_reference_bitext(tmp_path):
    pairs = [("Hallo Welt.", "Hello world."), ("Ja.", "The minister resigned."), ("Gut.", "Good.")]
    write_bitext(tmp_path / "mined.parquet", "de", "en", pairs, [1.3, 1.2, 1.01], [0.9, 0.55, 0.8])
    en, de, counts = load_pairs(str(tmp_path / "mined.parquet"), "en", "de", 1.1, 0.7)
    assert (en, de) == (["Hello world."], ["Hallo Welt."])
    assert counts["below_min_score"] == 1 and counts["below_min_cosine"] == 1
    write_bitext(tmp_path / "gold.parquet", "de", "en", pairs, [1.0] * 3)  # no cosine column
    en, _, counts = load_pairs(str(tmp_path / "gold.parquet"), "en", "de", min_cosine=0.7)
    assert len(en) == 3 and counts["below_min_cosine"] == 0


def test_valid_split_is_small_disjoint_and_not_the_tail():
    src = [f"s{i}" for i in range(1000)]
    tgt = [f"t{i}" for i in range(1000)]
    (train, train_tgt), (valid, valid_tgt) = split_valid(src, tgt, 500)
    assert len(valid) == 50 and len(train) == 950 and not set(train) & set(valid)
    assert [s[1:] for s in valid] == [t[1:] for t in valid_tgt]  # pairs stay aligned
    # mined bitext is sorted by score: the validation set must not be its worst tail
    assert min(int(s[1:]) for s in valid) < 500
    assert split_valid(src, tgt, 500) == split_valid(src, tgt, 500)


def test_generate_parsing_and_scores(tmp_path):
    class Pieces:
        def decode(self, pieces):
            return "".join(pieces).replace("▁", " ").strip()

    (tmp_path / "gen").write_text("S-1\tx\nH-1\t-0.2\t▁a ▁cat\nH-0\t-0.1\t▁the ▁dog\n")
    assert parse_generate(tmp_path / "gen", 2, Pieces()) == ["the dog", "a cat"]
    perfect = score(["the dog runs .", "a cat"], ["the dog runs .", "a cat"], "en")
    assert perfect["bleu"] == 100.0 and perfect["chrf"] == 100.0
    zh = score(["我们今天去公园散步了。"], ["我们今天去公园散步了。"], "zh")
    assert zh["bleu"] == 100.0
    report = {
        "results": [{"direction": "en-de", "bleu": 1.234, "chrf": 20.0}],
        "data": {"train": 5},
    }
    assert summary(report) == "en-de: BLEU 1.23 chrF 20.00 (5 training pairs)"


def test_cli_reports_a_bad_pair_test_set_or_bitext_before_training(tmp_path):
    (tmp_path / "t.de").write_bytes(b"Eins.\nZwei.\n\n")  # trailing blank lines do not count
    (tmp_path / "t.en").write_bytes(b"One.\n")
    (tmp_path / "bitext.jsonl").write_text("not json\n")
    args = ["nmt", "--pair", "de-en", "--bitext", str(tmp_path / "bitext.jsonl")]
    args += ["--test-src", str(tmp_path / "t.de"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--test-ref", str(tmp_path / "t.en")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"ccmine: bad bitext: test set: {tmp_path / 't.de'} has 2 lines, "
        f"{tmp_path / 't.en'} 1: not line-aligned\n"
    )
    (tmp_path / "t.en").write_bytes(b"One.\nTw\xf6.\n")
    result = CliRunner().invoke(cli, [*args, "--test-ref", str(tmp_path / "t.en")])
    assert (
        result.stderr
        == f"ccmine: bad bitext: {tmp_path / 't.en'}:2: not UTF-8 (invalid start byte)\n"
    )
    (tmp_path / "t.en").write_bytes(b"One.\nTwo.\n")
    write_bitext(tmp_path / "few.parquet", "de", "en", [("Ja.", "Yes.")] * 30, [1.2] * 30)
    args[4] = str(tmp_path / "few.parquet")
    result = CliRunner().invoke(
        cli, [*args, "--test-ref", str(tmp_path / "t.en"), "--min-score", "1.5"]
    )
    assert result.exit_code == 2
    assert "only 0 training pairs after filtering, too few to train on" in result.stderr
    args[2] = "de"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Invalid value for '--pair': 'de': give two language codes, e.g. en-de" in result.output


@pytest.mark.slow
def test_cpu_smoke_run_produces_bleu(shared_data, tmp_path):
    pytest.importorskip("fairseq")
    m30k = shared_data / "parallel" / "en-de" / "multi30k"

    def lines(name, n):
        with gzip.open(m30k / name, "rt", encoding="utf-8") as f:
            return [next(f).strip() for _ in range(n)]

    en, de = lines("train.en.gz", 1500), lines("train.de.gz", 1500)
    write_bitext(
        tmp_path / "bitext.parquet", "de", "en", list(zip(de, en, strict=True)), [1.2] * 1500
    )
    (tmp_path / "test.en").write_text("\n".join(lines("test_2016_flickr.en.gz", 50)) + "\n")
    (tmp_path / "test.de").write_text("\n".join(lines("test_2016_flickr.de.gz", 50)) + "\n")
    config = NmtConfig(
        pair="en-de",
        bitext=str(tmp_path / "bitext.parquet"),
        test_src=str(tmp_path / "test.en"),
        test_ref=str(tmp_path / "test.de"),
        out_dir=str(tmp_path / "out"),
        max_update=60,
        valid_size=100,
    )
    report = run(config)
    assert [r["direction"] for r in report["results"]] == ["en-de", "de-en"]
    assert all(
        r["test_sentences"] == 50 and r["bleu"] >= 0 and r["chrf"] > 0 for r in report["results"]
    )
    assert report["data"]["train"] == 1425 and report["data"]["valid"] == 75
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["results"] == report["results"]
    hyps = (tmp_path / "out" / "en-de" / "hypotheses.de").read_text().splitlines()
    assert len(hyps) == 50
    # A rerun resumes: fairseq loads checkpoint_last.pt at update 60 instead of starting over.
    run(config)
    log = (tmp_path / "out" / "en-de" / "fairseq.log").read_text()
    assert re.search(r"Loaded checkpoint \S*checkpoint_last.pt \(epoch \d+ @ 60 updates\)", log)


def test_device_choice(monkeypatch):
    import torch

    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="no GPU"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"

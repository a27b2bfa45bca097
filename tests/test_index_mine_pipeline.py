"""Index and mine stages on embeddings dropped in from elsewhere (the documented format)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from indexes import faiss_index
from mining.embedding_store import ShardLayout
from pipelines import index, mine
from pipelines.cli import cli
from tests.synthetic_run import planted, unit, write_embeddings

pytestmark = pytest.mark.slow


@pytest.fixture
def run_dir(tmp_path):
    """de: 300 sentences, the first 200 noisy translations of en's first 200; en: 500."""
    de, en = planted(np.random.default_rng(0), 300, 500, 200, 24)
    return write_embeddings(tmp_path, {"de": de, "en": en}, {"de": 120, "en": 200})


def read_bitext(run_dir):
    return pq.read_table(run_dir / "bitext" / "de-en" / "part-00000.parquet").to_pylist()


def test_the_training_sample_comes_from_shards_spread_over_a_large_hash_cut_language():
    def layout(shards, rows):
        paths = tuple(f"shard-{n:05d}.npy" for n in range(shards))
        return ShardLayout("de", paths, paths, tuple(range(0, shards * rows + 1, rows)), 8)

    counts = index.sample_counts(layout(1000, 100), 500, spread=True)  # 8 x 500 rows: 40 shards
    drawn = np.flatnonzero(counts)
    assert sum(counts) == 500 and len(drawn) == 40
    assert drawn[0] == 12 and drawn[-1] == 987 and set(np.diff(drawn)) == {25}
    every = index.sample_counts(layout(1000, 100), 500, spread=False)
    assert every == [0, 1] * 500  # a row from every other shard, not from the first 500
    assert index.sample_counts(layout(10, 100), 500, spread=True) == [50] * 10  # small: all
    rows = np.array([10, 190] * 50)  # uneven shards: as many as hold 8 x 100 rows
    assert index.sampled_shards(rows, 100).tolist() == [6, 18, 31, 43, 56, 68, 81, 93]
    assert index.sampled_shards(rows, 120).tolist() == list(range(5, 100, 10))  # 9 hold 810
    uneven = ShardLayout("de", ("a", "b", "c"), ("a", "b", "c"), (0, 7, 7, 10), 8)
    assert index.sample_counts(uneven, 5, spread=True) == [3, 0, 2]


def test_shards_the_embed_stage_cut_give_their_sample_from_a_spread(tmp_path):
    vectors = unit(np.random.default_rng(0).standard_normal((100_000, 8)))
    write_embeddings(tmp_path, {"de": vectors}, {"de": 1000})
    args = {"index_type": "ivfpq", "nlist": 16}  # a sample of 10,000 rows
    stats = index.run(str(tmp_path), ["de"], args)
    assert stats["indexes"]["de"]["training_sample"] == {"rows": 10_000, "embedding_shards": 100}
    marker = tmp_path / "embeddings" / "_SUCCESS.json"
    marked = json.loads(marker.read_text())
    marked["config"]["langs"] = {"de": "100000:0123456789abcdef"}  # as the embed stage marks
    marker.write_text(json.dumps(marked))
    stats = index.run(str(tmp_path), ["de"], args, reuse=False)
    assert stats["indexes"]["de"]["training_sample"] == {"rows": 10_000, "embedding_shards": 80}


def test_flat_index_and_mining(run_dir):
    stats = index.run(str(run_dir), ["de", "en"], {"index_type": "auto"})
    assert stats["indexes"]["en"]["count"] == 500 and stats["indexes"]["en"]["factory"] == "Flat"
    stats = mine.run(str(run_dir), "de", "en", threshold=1.05)
    assert stats["src_sentences"] == 300 and stats["tgt_sentences"] == 500
    rows = read_bitext(run_dir)
    assert stats["kept"] == len(rows) and stats["candidates"] == stats["kept"] + sum(
        stats["dropped"].values()
    )
    correct = [r["src_text"].split()[-1] == r["tgt_text"].split()[-1] for r in rows]
    # Every translation is found, and each scores above every pair of distractors.
    assert sum(correct) == 200 and all(correct[:200])
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 1.05
    assert rows[0]["src_lang"] == "de" and rows[0]["src_url"].startswith("http://de.example/")
    assert rows[0]["src_hash"] == 1000 + int(rows[0]["src_text"].split()[-1])
    # The histogram counts every candidate; the sample holds the best ones below the threshold.
    assert sum(stats["score_histogram"]["counts"]) == stats["candidates"]
    sample = [s["score"] for s in stats["below_threshold_sample"]]
    assert len(sample) == 10 and sample == sorted(sample, reverse=True) and max(sample) < 1.05


def test_ivf_options_for_an_exact_index_are_named_or_refused(run_dir, caplog):
    caplog.set_level("WARNING", logger="ccmine")
    stats = index.run(str(run_dir), ["en"], {"index_type": "auto", "nlist": 8, "opq": True})
    assert stats["indexes"]["en"]["factory"] == "Flat"
    assert (
        "index en: 500 vectors get an exact (flat) index, so --nlist, --opq (IVF-PQ options) "
        "are not used; auto builds IVF-PQ from 100,000 vectors" in caplog.text
    )
    caplog.clear()
    index.run(str(run_dir), ["de"], {"index_type": "auto"}, reuse=False)
    assert "not used" not in caplog.text
    command = ["index", "--run", str(run_dir), "--index-type", "flat", "--nprobe", "4"]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2
    assert "--nprobe: IVF-PQ options, and --index-type flat builds an exact index" in result.output
    command = [
        "index",
        "--run",
        str(run_dir),
        "--langs",
        "de",
        "--index-type",
        "ivfpq",
        "--pq-m",
        "5",
    ]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2
    assert result.stderr.startswith("ccmine: error: index de: --pq-m 5 does not divide the ")


@pytest.mark.parametrize("bits,codes", [(4, "PQ8x4fsr"), (8, "PQ8np")])
def test_ivfpq_index_shards_mine_the_same(run_dir, bits, codes):
    index.run(str(run_dir), ["de", "en"], {"index_type": "flat"})
    mine.run(str(run_dir), "de", "en", threshold=1.05)
    exact = {(r["src_text"], r["tgt_text"]) for r in read_bitext(run_dir)}

    args = {"index_type": "ivfpq", "nlist": 8, "pq_m": 8, "pq_bits": bits, "shard_size": 200}
    stats = index.run(str(run_dir), ["de", "en"], args)
    assert stats["indexes"]["en"]["factory"] == f"IVF8,{codes}"
    meta = json.loads((run_dir / "indexes" / "en.json").read_text())
    assert meta["count"] == 500 and meta["encoder"] == "synthetic"
    assert [(s["start"], s["stop"]) for s in meta["shards"]] == [(0, 200), (200, 400), (400, 500)]
    built = faiss_index.load_index(str(run_dir / "indexes" / "en" / "shard-00002.faiss"))
    assert built.ntotal == 100
    mine.run(str(run_dir), "de", "en", threshold=1.05)
    approx = {(r["src_text"], r["tgt_text"]) for r in read_bitext(run_dir)}
    assert len(exact & approx) / len(exact) > 0.95


def test_mine_writes_the_run_report_with_the_pairs_mined_before(run_dir):
    index.run(str(run_dir), ["de", "en"], {})
    for src, tgt in (("all", "en"), ("en", "de")):  # all: every language embedded but --tgt
        command = ["mine", "--run", str(run_dir), "--src", src, "--tgt", tgt]
        result = CliRunner().invoke(cli, [*command, "--threshold", "1.05"])
        assert result.exit_code == 0, result.output
    assert result.output.endswith(f"report: {run_dir}/report/index.md\n")
    report = (run_dir / "report" / "index.md").read_text()
    assert report.startswith("# ccmine run report: en-de, de-en\n")  # the pair just mined first
    # Embeddings dropped in by hand: no sentences stage, so the counts are the mining's.
    assert "| en-de | 500 | 300 | 288 | 256 | 1.05 | " in report
    assert "| de-en | 300 | 500 | 288 | 256 | 1.05 | " in report
    assert (run_dir / "report" / "scores-de-en.png").stat().st_size > 0


def test_mine_cli_and_upper_cut(run_dir):
    index.run(str(run_dir), ["de", "en"], {})
    result = CliRunner().invoke(
        cli,
        ["mine", "--run", str(run_dir), "--src", "de", "--threshold", "1.0", "--max-score", "1.2"],
    )
    assert result.exit_code == 0, result.output
    stats = mine.run(str(run_dir), "de", "en", threshold=1.0, max_score=1.2)
    assert stats["dropped"]["above_max_score"] > 0
    assert all(r["score"] <= 1.2 for r in read_bitext(run_dir))
    result = CliRunner().invoke(cli, ["mine", "--run", str(run_dir), "--src", "th"])
    assert result.exit_code == 2
    assert result.stderr == "ccmine: error: the run has no embeddings for 'th'; it has: de, en\n"


def test_mine_needs_indexes(tmp_path):
    result = CliRunner().invoke(cli, ["mine", "--run", str(tmp_path), "--src", "de"])
    assert result.exit_code == 2 and "run `ccmine embed` first" in result.stderr


def test_identical_text_and_score_cuts():
    from mining.pair_filters import KEEP, same_text, score_reasons

    assert same_text("Linux 6.1", "linux  6.1") and not same_text("Hallo Welt.", "Hello world.")
    reasons = score_reasons(
        np.array([1.3, 0.9, 1.5, 1.2], np.float32),
        np.array([0.9, 0.9, 0.9, 0.5], np.float32),
        threshold=1.0,
        max_score=1.4,
        min_cosine=0.6,
    )
    assert reasons.tolist() == [KEEP, 0, 1, 2]


def test_identical_texts_are_found_slice_by_slice_across_chunks():
    import pyarrow as pa

    from pipelines.bitext import _identical

    sources = ["Linux 6.1", "Hallo Welt.", "GNU/Linux", "Grüße", "你好", "Debian"] * 7
    targets = ["linux  6.1", "Hello world.", "gnu/linux", "Gruesse", "你好", "Debian!"] * 7
    expected = [True, False, True, False, True, False] * 7
    chunked = pa.chunked_array([sources[:5], sources[5:30], sources[30:]])
    for slice_rows in (1, 4, 10_000):
        found = _identical(chunked, pa.chunked_array([targets]), slice_rows)
        assert found.dtype == bool and found.tolist() == expected
    empty = pa.chunked_array([], pa.string())
    assert _identical(empty, empty).size == 0


def test_the_default_cut_is_the_one_calibrated_for_the_mode(tmp_path):
    from mining.encoders.loading import resolve_encoder

    muse = resolve_encoder("muse")  # calibrated for max and for union, ratio margin
    union, best = mine.default_cut("ratio", "union", muse), mine.default_cut("ratio", "max", muse)
    assert (union.mode, best.mode) == ("union", "max")
    # union keeps a pair found from either side, so the same precision needs a higher cut
    assert union.threshold > best.threshold
    assert mine.default_cut("ratio", "intersect", muse) == best  # named: mine warns
    assert mine.default_cut("distance", "max", muse).mode is None
    assert mine.default_cut("ratio", "max", str(tmp_path)).threshold is None


def test_the_card_says_where_the_cut_came_from(tmp_path):
    from mining.encoders.calibration import with_cut

    encoder_dir = tmp_path / "encoder"
    encoder_dir.mkdir()
    config = with_cut({}, "ratio", "max", {"threshold": 1.05, "min_cosine": 0.2})
    (encoder_dir / "ccmine_encoder.json").write_text(json.dumps(config))
    de, en = planted(np.random.default_rng(0), 300, 500, 200, 24)
    write_embeddings(tmp_path, {"de": de, "en": en}, {"de": 120, "en": 200}, "x", str(encoder_dir))
    index.run(str(tmp_path), ["de", "en"], {})

    def card():
        return (tmp_path / "bitext" / "de-en" / "README.md").read_text()

    stats = mine.run(str(tmp_path), "de", "en", mode="intersect")  # max's cut, named
    assert (stats["threshold"], stats["min_cosine"]) == (1.05, 0.2)
    source = "the encoder's, calibrated for mode max"
    assert f"- Threshold 1.05 ({source}); score ceiling none; cosine floor 0.2 ({source})" in card()
    mine.run(str(tmp_path), "de", "en", margin_kind="distance", min_cosine=-1)
    assert "- Threshold 0.0 (the margin's neutral point);" in card()
    assert "cosine floor none" in card()


def test_min_cosine_drops_untranslated_sentences_that_pass_the_margin(run_dir):
    """de's last 100 sentences have no translation: some still beat their (sparse)
    neighbourhood's margin, none reaches the cosine of a real translation."""
    index.run(str(run_dir), ["de", "en"], {})
    margin_only = mine.run(str(run_dir), "de", "en", threshold=1.0)
    untranslated = [r for r in read_bitext(run_dir) if int(r["src_text"].split()[-1]) >= 200]
    assert untranslated and max(r["cosine"] for r in untranslated) < 0.8

    result = CliRunner().invoke(
        cli,
        ["mine", "--run", str(run_dir), "--src", "de", "--threshold", "1.0", "--min-cosine", "0.8"],
    )
    assert result.exit_code == 0, result.output
    stats = json.loads((run_dir / "bitext" / "de-en" / "stats.json").read_text())
    rows = read_bitext(run_dir)
    assert stats["dropped"]["below_min_cosine"] == len(untranslated)
    assert stats["kept"] == margin_only["kept"] - len(untranslated)
    assert all(r["cosine"] >= 0.8 for r in rows)
    assert all(r["src_text"].split()[-1] == r["tgt_text"].split()[-1] for r in rows)


def mine_cli(run_dir):
    return CliRunner().invoke(cli, ["mine", "--run", str(run_dir), "--src", "de"])


def assert_refused(run_dir, message):
    result = mine_cli(run_dir)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ccmine: bad index: ")
    assert message in result.stderr
    assert not (run_dir / "bitext").exists()  # no partial bitext, not even a started one


@pytest.fixture
def sharded_index(run_dir):
    index.run(str(run_dir), ["de", "en"], {"shard_size": 200})
    return run_dir, run_dir / "indexes" / "en" / "shard-00001.faiss"


def test_missing_or_incomplete_index_shard_is_refused(sharded_index):
    run_dir, shard = sharded_index
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    assert_refused(run_dir, f"{shard}: incomplete: {len(data) // 2} bytes, {len(data)} written")
    shard.unlink()
    assert_refused(run_dir, f"{shard}: missing")


def test_shard_from_another_encoder_or_dimension_is_refused(sharded_index, tmp_path_factory):
    run_dir, shard = sharded_index
    for encoder, dim in (("another-encoder", 24), ("synthetic", 8)):
        other = tmp_path_factory.mktemp("other")
        de, en = planted(np.random.default_rng(1), 300, 500, 200, dim)
        write_embeddings(other, {"de": de, "en": en}, {"de": 120, "en": 200}, encoder=encoder)
        index.run(str(other), ["de", "en"], {"shard_size": 200})
        for suffix in (".faiss", ".json"):
            source = other / "indexes" / "en" / shard.with_suffix(suffix).name
            shard.with_suffix(suffix).write_bytes(source.read_bytes())
        changed = "encoder is 'another-encoder'" if dim == 24 else "dim is 8"
        assert_refused(run_dir, f"{shard}: {changed}")


def test_embeddings_rebuilt_after_indexing_are_refused(sharded_index):
    run_dir, _ = sharded_index
    de, en = planted(np.random.default_rng(0), 300, 500, 200, 24)
    write_embeddings(run_dir, {"de": de, "en": en}, {"de": 120, "en": 200})
    assert_refused(run_dir, "built from other embeddings than the run's current ones")

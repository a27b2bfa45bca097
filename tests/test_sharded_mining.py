"""Sharded index and mine give the pairs of the definitions: several query shards and index
shards (cutting across embedding shards), every margin and mode, against a brute-force oracle."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mining.margin import MARGINS, MODES
from pipelines import bitext, index, knn, mine, pair_context, select
from pipelines.cli import cli
from pipelines.work_files import put
from tests.synthetic_run import planted, row_pairs, unit, write_embeddings
from tests.test_margin import brute_force

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory):
    """de 300 rows in 3 embedding shards, en 500 in 4; exact index shards of 130 rows."""
    run_dir = tmp_path_factory.mktemp("sharded")
    de, en = planted(np.random.default_rng(5), 300, 500, 200, 16)
    write_embeddings(run_dir, {"de": de, "en": en}, {"de": 100, "en": 150})
    stats = index.run(str(run_dir), ["de", "en"], {"index_type": "flat", "shard_size": 130})
    assert stats["indexes"]["en"]["shards"] == 4 and stats["indexes"]["de"]["shards"] == 3
    # the vectors as the miner sees them (stored as float16)
    return (
        run_dir,
        de.astype(np.float16).astype(np.float32),
        en.astype(np.float16).astype(np.float32),
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", MARGINS)
def test_sharded_mining_equals_the_definitions(sharded_run, kind, mode):
    run_dir, de, en = sharded_run
    stats = mine.run(str(run_dir), "de", "en", 4, kind, mode, threshold=-10.0)
    assert stats["search_items"] == 3 * 4 + 4 * 3  # (query shard, index shard) items
    rows = mine.read_bitext(str(run_dir / "bitext" / "de-en")).to_pylist()
    expected = brute_force(de, en, 4, kind, mode)
    assert row_pairs(rows) == [(i, j) for i, j, _ in expected]
    np.testing.assert_allclose([r["score"] for r in rows], [s for *_, s in expected], atol=1e-5)
    assert stats["candidates"] == stats["kept"] == len(expected)


def test_max_mode_continues_from_undecided_pairs(sharded_run, monkeypatch):
    """With one round per pipeline the driver must continue several times: same pairs."""
    run_dir, de, en = sharded_run
    monkeypatch.setattr(mine, "ROUNDS_PER_PIPELINE", 1)
    stats = mine.run(str(run_dir), "de", "en", threshold=-10.0)
    assert stats["rounds"] >= 2 and sum(stats["accepted_per_round"]) == stats["kept"]
    rows = mine.read_bitext(str(run_dir / "bitext" / "de-en")).to_pylist()
    assert row_pairs(rows) == [(i, j) for i, j, _ in brute_force(de, en, 4, "ratio", "max")]

    with pytest.raises(mine.StageError, match="still undecided after 1 rounds"):
        mine.run(str(run_dir), "de", "en", threshold=-10.0, max_rounds=1)
    assert not list((run_dir / "bitext").glob(".de-en.tmp-*"))  # nothing left behind


@pytest.mark.parametrize("mode", MODES)
def test_blocks_grouped_by_shards_give_the_same_pairs(sharded_run, monkeypatch, mode):
    """With 2 groups a language (de's 3 shards in groups of 2, en's 4 in groups of 2), a block
    sent on by the other side's shards goes in one part per group, not one per shard."""
    run_dir, de, en = sharded_run
    blocks = []

    def counted_put(work, name, block):
        blocks.append(name)
        return put(work, name, block)

    monkeypatch.setattr(pair_context, "GROUPS", 2)
    monkeypatch.setattr(knn, "put", counted_put)
    monkeypatch.setattr(select, "put", counted_put)
    monkeypatch.setattr(bitext, "put", counted_put)
    stats = mine.run(str(run_dir), "de", "en", 4, "ratio", mode, threshold=-10.0)
    rows = mine.read_bitext(str(run_dir / "bitext" / "de-en")).to_pylist()
    expected = brute_force(de, en, 4, "ratio", mode)
    assert row_pairs(rows) == [(i, j) for i, j, _ in expected]
    np.testing.assert_allclose([r["score"] for r in rows], [s for *_, s in expected], atol=1e-5)
    assert stats["candidates"] == len(expected)

    def written(prefix):
        return [name for name in blocks if name.startswith(prefix)]

    assert len(written("candidates/")) == 3 * 2 + 4 * 2  # by single shards: 3 x 4 + 4 x 3
    assert len(written("scored/")) == len(written("candidates/"))
    if mode == "max":  # keyed by source group, then by target group (by shard: up to 2 and 3)
        groups = ("src00000", "src00001")
        assert {name.split("/")[1][:8] for name in written("pooled/")} == set(groups)
        targets = {name.split("-")[1] for name in written("round") if "/" not in name}
        assert targets == {"tgt00000", "tgt00001"}
    # assembly: source texts by source group, target texts by target group (by shard: up to
    # 3 x 4 attached blocks and 4 row tables)
    assert {name.split("/")[1][:8] for name in written("kept/")} == {"src00000", "src00001"}
    attached = {name.split("/")[1] for name in written("attached/")}
    assert attached <= {f"tgt{t:05d}-from-src{s:05d}" for t in (0, 1) for s in (0, 1)}
    assert sorted(written("rows/")) == ["rows/tgt00000", "rows/tgt00001"]


def test_topk_blocks_hold_int32_rows_within_their_index_shard(sharded_run, monkeypatch):
    """The top-k blocks, one per query shard and index shard (the most bytes a mine writes),
    hold each neighbour's row within its index shard as int32, a third fewer bytes than row ids
    as int64; the merged lists still find the definitions' pairs."""
    run_dir, de, en = sharded_run
    blocks = {}

    def kept_put(work, name, block):
        blocks[name] = block
        return put(work, name, block)

    monkeypatch.setattr(knn, "put", kept_put)
    mine.run(str(run_dir), "de", "en", 4, "ratio", "union", threshold=-10.0)
    topk = {name: block for name, block in blocks.items() if name.startswith("topk/")}
    assert len(topk) == 3 * 4 + 4 * 3  # every query shard in every index shard
    for name, block in topk.items():
        assert block.rows.dtype == np.int32 and block.rows.max() < 130, name
        assert block.base == 130 * int(name.rsplit("-", 1)[1])  # index shards of 130 rows
        ids = block.ids()
        assert ids.dtype == np.int64 and np.array_equal(ids >= 0, block.rows >= 0)
    rows = mine.read_bitext(str(run_dir / "bitext" / "de-en")).to_pylist()
    assert row_pairs(rows) == [(i, j) for i, j, _ in brute_force(de, en, 4, "ratio", "union")]


def test_shard_groups_cover_a_language_in_bounded_groups():
    from mining.embedding_store import ShardLayout

    def groups(shards):
        layout = ShardLayout("en", ("x.npy",) * shards, ("x.parquet",) * shards, (0,), 768)
        return pair_context.shard_groups({"en": layout})["en"]

    assert groups(1) == 1
    assert groups(256) == 1  # as by single shards
    assert groups(257) == 2  # 129 groups
    assert groups(4096) == 16  # 256 groups
    assert groups(10_000) == pair_context.GROUP_SHARDS  # a billion rows: 625 groups


def test_parts_are_score_ranges_in_order(sharded_run, monkeypatch):
    run_dir, *_ = sharded_run
    monkeypatch.setattr(mine.bitext, "ROWS_PER_PART", 60)
    stats = mine.run(str(run_dir), "de", "en", threshold=-10.0)
    parts = sorted((run_dir / "bitext" / "de-en").glob("part-*.parquet"))
    assert len(parts) >= 4
    tables = [pq.read_table(p) for p in parts]
    assert sum(t.num_rows for t in tables) == stats["kept"]
    scores = [t.column("score").to_pylist() for t in tables]
    assert all(part == sorted(part, reverse=True) for part in scores)
    assert all(min(a) >= max(b) for a, b in zip(scores, scores[1:], strict=False))


def test_sharded_ivfpq_finds_the_pairs_of_one_ivfpq_index(tmp_path):
    """IVF-PQ index shards (one quantizer for the language) against one IVF-PQ index."""
    de, en = planted(np.random.default_rng(9), 3000, 4000, 2000, 32, noise=0.6)
    write_embeddings(tmp_path, {"de": de, "en": en}, {"de": 700, "en": 900})
    args = {"index_type": "ivfpq", "nlist": 32, "pq_m": 16, "nprobe": 4}
    found = {}
    for shard_size in (10_000, 900):
        index.run(str(tmp_path), ["de", "en"], {**args, "shard_size": shard_size})
        mine.run(str(tmp_path), "de", "en", threshold=1.0)
        found[shard_size] = set(
            row_pairs(mine.read_bitext(str(tmp_path / "bitext" / "de-en")).to_pylist())
        )
    unsharded, sharded = found[10_000], found[900]
    assert len(unsharded) > 1500
    assert len(unsharded & sharded) / len(unsharded) >= 0.995


def test_pairs_mined_in_shared_jobs_equal_each_pair_mined_alone(tmp_path, monkeypatch, caplog):
    """de-en and fr-en in the same jobs: each bitext equals its pair's mined alone, and fr-en
    adds no job to de-en's (max mode, one round per job, so de-en takes several). With too few
    rounds for de-en, it is not written while fr-en (three sentences, one round) is, and the
    error comes after. A worker error in fr-en's steps fails the job, so both pairs. Each en
    index shard is loaded once for both pairs' queries, and en's inputs are checked once."""
    rng = np.random.default_rng(5)
    de, en = planted(rng, 300, 500, 200, 16)
    fr = unit(en[:3] + 0.02 * rng.normal(size=(3, 16)))
    write_embeddings(tmp_path, {"de": de, "en": en, "fr": fr}, {"de": 100, "en": 150, "fr": 100})
    index.run(str(tmp_path), ["de", "en", "fr"], {"index_type": "flat", "shard_size": 130})
    monkeypatch.setattr(mine, "ROUNDS_PER_PIPELINE", 1)
    monkeypatch.setattr(knn, "TASKS_WANTED", 1)  # an index shard's items in one task
    jobs = []
    run_beam = mine.run_beam
    monkeypatch.setattr(mine, "run_beam", lambda *args: jobs.append(1) or run_beam(*args))

    def bitext(pair):
        return mine.read_bitext(str(tmp_path / "bitext" / pair)).to_pylist()

    alone = {}
    for src in ("de", "fr"):
        jobs.clear()
        stats = mine.run(str(tmp_path), src, "en", threshold=-10.0)
        alone[src] = (bitext(f"{src}-en"), len(jobs))
        assert stats["mined_with"] == []
        assert stats["index_shard_loads"] == {"de": 3, "fr": 1}[src] + 4  # and en's 4
    assert alone["de"][1] > alone["fr"][1] == 2  # search and selection, then the parts
    assert row_pairs(alone["fr"][0]) == [(0, 0), (1, 1), (2, 2)]

    jobs.clear()
    read = []  # each language's shard headers are read once, en's too
    shard_layout = mine.shard_layout
    monkeypatch.setattr(
        mine, "shard_layout", lambda d, lang: read.append(lang) or shard_layout(d, lang)
    )
    caplog.set_level("INFO", logger="ccmine")
    mined = mine.run_pairs(str(tmp_path), [("de", "en"), ("fr", "en")], threshold=-10.0)
    # de-en: 3 de index shards x 4 en query shards, and 4 x 3; fr-en: 1 x 4 and 4 x 1.
    assert "mine: 32 searches of a query shard in an index shard" in caplog.text
    assert sorted(read) == ["de", "en", "fr"]
    assert len(jobs) == alone["de"][1]
    assert bitext("de-en") == alone["de"][0] and bitext("fr-en") == alone["fr"][0]
    assert mined[("de", "en")]["mined_with"] == ["fr-en"]
    assert mined[("fr", "en")]["mined_with"] == ["de-en"]
    assert mined[("de", "en")]["kept"] == len(alone["de"][0])
    loads = [mined[pair]["index_shard_loads"] for pair in (("de", "en"), ("fr", "en"))]
    assert sum(loads) == 3 + 1 + 4  # de's, fr's and en's shards, each loaded once

    args = ["mine", "--run", str(tmp_path), "--src", "de,fr", "--threshold", "-10"]
    jobs.clear()
    result = CliRunner().invoke(cli, [*args, "--pairs-per-job", "1"])  # one pair after the other
    assert result.exit_code == 0, result.output
    assert len(jobs) == alone["de"][1] + alone["fr"][1]
    assert "fr-en: 3 pairs kept of 3 candidates" in result.output
    stats = json.loads((tmp_path / "bitext" / "de-en" / "stats.json").read_text())
    assert stats["mined_with"] == [] and bitext("de-en") == alone["de"][0]

    marker = {
        p: (tmp_path / "bitext" / p / "_SUCCESS.json").read_text() for p in ("de-en", "fr-en")
    }
    result = CliRunner().invoke(cli, [*args, "--max-rounds", "1"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "ccmine: error: de-en: max mode: pairs still undecided after 1 "
    )
    assert (tmp_path / "bitext" / "de-en" / "_SUCCESS.json").read_text() == marker["de-en"]
    assert (tmp_path / "bitext" / "fr-en" / "_SUCCESS.json").read_text() != marker["fr-en"]
    assert bitext("fr-en") == alone["fr"][0]
    assert not list((tmp_path / "bitext").glob(".*.tmp-*"))  # nothing left behind

    def search_fails(self, item):  # a worker error in fr-en's part of the shared job
        _lang, _shard, pair, _query_shard = item
        if pair == "fr-en":
            raise OSError("index shard unreadable")
        yield from search(self, item)

    search = knn.SearchIndexShard._search
    monkeypatch.setattr(knn.SearchIndexShard, "_search", search_fails)
    marker["fr-en"] = (tmp_path / "bitext" / "fr-en" / "_SUCCESS.json").read_text()
    with pytest.raises(Exception, match="index shard unreadable"):
        mine.run_pairs(str(tmp_path), [("de", "en"), ("fr", "en")], threshold=-10.0)
    for pair in ("de-en", "fr-en"):  # the job failed both pairs: their last output stays
        assert (tmp_path / "bitext" / pair / "_SUCCESS.json").read_text() == marker[pair]
    assert not list((tmp_path / "bitext").glob(".*.tmp-*"))


def test_search_tasks_hold_every_pairs_items_of_one_index_shard(tmp_path, monkeypatch):
    """An index shard's items, of every pair whose queries meet its language, in tasks of up to
    the given size, each item once; one item per task until a job has TASKS_WANTED tasks."""
    from mining.embedding_store import shard_layout
    from pipelines.pair_context import PairContext, write_job

    rng = np.random.default_rng(1)
    vectors = {
        lang: unit(rng.normal(size=(n, 8))) for lang, n in (("de", 30), ("fr", 10), ("en", 50))
    }
    write_embeddings(tmp_path, vectors, {"de": 10, "fr": 10, "en": 10})
    layouts = {lang: shard_layout(str(tmp_path / "embeddings"), lang) for lang in vectors}
    pairs = [
        PairContext(f"{s}-en", s, "en", {s: layouts[s], "en": layouts["en"]}, str(tmp_path), "m")
        for s in ("de", "fr")
    ]
    shard = {"number": 2, "start": 20, "stop": 30}
    metas = {lang: {"shards": [shard] * n} for lang, n in (("de", 3), ("fr", 1), ("en", 5))}
    job = write_job(str(tmp_path), "job", pairs, metas=metas)
    items = 3 * 5 + 5 * 3 + 1 * 5 + 5 * 1  # de's and fr's index shards x en's query shards, ...
    assert knn.task_size(job) == 1  # 40 items: spread one by one
    monkeypatch.setattr(knn, "TASKS_WANTED", 10)
    assert knn.task_size(job) == items // 10 == 4
    monkeypatch.setattr(knn, "TASKS_WANTED", 2)
    assert knn.task_size(job) == knn.ITEMS_PER_TASK
    tasks = knn.search_tasks(("en", shard), job, 3)
    items = [item for task in tasks for item in task]
    assert [len(task) for task in tasks] == [3, 1]  # de's 3 query shards, then fr's 1
    assert items == [("en", shard, "de-en", n) for n in range(3)] + [("en", shard, "fr-en", 0)]
    tasks = knn.search_tasks(("de", shard), job, 3)  # only de-en's queries (en's 5) meet de
    assert [[(pair, n) for _, _, pair, n in task] for task in tasks] == [
        [("de-en", 0), ("de-en", 1), ("de-en", 2)],
        [("de-en", 3), ("de-en", 4)],
    ]

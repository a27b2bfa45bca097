"""Every stage with its input and run directory on Google Cloud Storage (an emulator on
loopback), as on Dataflow: Beam's GCS file system and the google-cloud-storage client carry every
read and write, and the bitext is the one a local run gets, scores and statistics included (embed
encodes the same chunks of each shard wherever it runs, so the vectors are equal byte for byte).
`ccmine run` on that run directory finds every stage complete and writes its report there."""

import pytest
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from click.testing import CliRunner

from mining.embedding_store import LAYOUT_NAME, read_parquet, read_vectors, shard_layout
from pipelines.cli import cli
from pipelines.mine import read_bitext
from pipelines.run_lock import LOCK_FILE
from pipelines.stage_dir import read_json
from tests.gcs_emulator import download, gcs_bucket, generation, served
from tests.synthetic_run import write_index_shards
from tests.test_chain import cut_sample

pytestmark = pytest.mark.slow


def run_stages(sample, run_dir: str) -> list[str]:
    """extract, embed, index and mine de-en with the default encoder; the commands' output."""
    outputs = []
    for args in (
        ["extract", "--input", str(sample), "--output", run_dir, "--langs", "de,en"],
        ["embed", "--run", run_dir, "--langs", "de,en"],
        ["index", "--run", run_dir, "--langs", "de,en"],
        ["mine", "--run", run_dir, "--src", "de"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        outputs.append(result.output)
    return outputs


def scored_pairs(bitext) -> dict:
    """(source, target, source URL): score, one per mined pair."""
    rows = bitext.to_pylist()
    scored = {(r["src_text"], r["tgt_text"], r["src_url"]): r["score"] for r in rows}
    assert len(scored) == len(rows)
    return scored


def timeless(stats: dict) -> dict:
    return {key: value for key, value in stats.items() if key != "seconds"}


def test_stages_run_with_input_and_run_directory_on_cloud_storage(tmp_path, monkeypatch):
    sample = cut_sample(tmp_path / "cut.warc.gz")
    run_stages(sample, str(tmp_path / "run"))
    local = read_bitext(str(tmp_path / "run" / "bitext" / "de-en"))
    local_stats = read_json(str(tmp_path / "run" / "bitext" / "de-en" / "stats.json"))
    local_layout = shard_layout(str(tmp_path / "run" / "embeddings"), "en")
    assert local.num_rows > 50
    with gcs_bucket(monkeypatch) as root:
        run, crawl = f"{root}/run", f"{root}/crawl/{sample.name}"
        with FileSystems.create(crawl, compression_type=CompressionTypes.UNCOMPRESSED) as out:
            out.write(sample.read_bytes())  # as is (by its name, Beam would gzip it again)
        outputs = run_stages(crawl, run)
        assert f"bitext written to {run}/bitext/de-en/" in outputs[-1]
        stored = {m.path for m in FileSystems.match([f"{run}/**"])[0].metadata_list}
        for stage in ("sentences", "embeddings", "indexes", "bitext/de-en"):
            assert f"{run}/{stage}/_SUCCESS.json" in stored, stage
        # the same files as the local run (but its lock): no work units or work files left behind
        files = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != LOCK_FILE]
        local_files = {p.relative_to(tmp_path / "run").as_posix() for p in files}
        assert {path.removeprefix(f"{run}/") for path in stored} == local_files
        remote = scored_pairs(read_bitext(f"{run}/bitext/de-en"))
        assert remote == scored_pairs(local)
        stats = read_json(f"{run}/bitext/de-en/stats.json")
        assert timeless(stats) == timeless(local_stats)
        # index and mine learn each shard's rows from the layout file embed wrote, not from its
        # header: through Beam's file system, reading a header downloads up to 16 MiB.
        embeddings = f"{run}/embeddings"
        with served() as traffic:
            layout = shard_layout(embeddings, "en")
        assert traffic["bytes"] < 10_000 < len(download(layout.npys[0])) / 4
        assert len(download(f"{embeddings}/lang=en/{LAYOUT_NAME}")) < 1_000
        assert layout.starts == local_layout.starts and layout.dim == local_layout.dim
        # a shard's vectors and ids are one download each (Beam's file system took 3 a file:
        # a new client's bucket lookup, the object's metadata, its bytes); one response more
        # is allowed, as the emulator may count the last one after the client returned
        npy = layout.npys[0]
        with served() as traffic:
            rows = len(read_vectors(npy)) + read_parquet(npy[: -len("npy")] + "parquet").num_rows
        assert traffic["requests"] <= 3 and rows == 2 * (layout.starts[1] - layout.starts[0])
        card = download(f"{run}/bitext/de-en/README.md").decode()
        assert f"{local.num_rows} sentence pairs mined from" in card
        assert f'ds.dataset("{run}/bitext/de-en", format="parquet"' in card
        assert f"read_parquet('{run}/bitext/de-en/part-*.parquet')" in card
        assert "DuckDB needs its\n`httpfs` extension and a GCS secret" in card

        # `ccmine run` on the same run directory finds every stage complete (the stage commands'
        # defaults are its own), and writes its report there.
        result = CliRunner().invoke(
            cli, ["run", "--input", crawl, "--output", run, "--src", "de", "--tgt", "en"]
        )
        assert result.exit_code == 0, result.output
        for stage in ("extract", "embed", "index", "mine de-en"):
            assert f"{stage}: skipped\n" in result.output
        report = download(f"{run}/report/index.md").decode()
        assert "## de-en" in report and "### Highest-scoring pairs" in report
        assert download(f"{run}/report/scores-de-en.png").startswith(b"\x89PNG")

        # Asked for zh too, it extracts again but takes over the de and en embeddings and
        # indexes where they lie (a bucket has no rename: the rest is deleted, then rewritten).
        shard = f"{run}/embeddings/lang=de/shard-00000.npy"
        before = generation(shard)
        result = CliRunner().invoke(
            cli, ["run", "--input", crawl, "--output", run, "--src", "de,zh", "--tgt", "en"]
        )
        assert result.exit_code == 0, result.output
        for stage, done in (("embed", "ran"), ("mine de-en", "skipped"), ("mine zh-en", "ran")):
            assert f"{stage}: {done}\n" in result.output
        assert set(read_json(f"{run}/embeddings/stats.json")["reused"]) == {"de", "en"}
        assert set(read_json(f"{run}/indexes/stats.json")["reused"]) == {"de", "en"}
        assert generation(shard) == before
        assert scored_pairs(read_bitext(f"{run}/bitext/de-en")) == scored_pairs(local)
        assert read_bitext(f"{run}/bitext/zh-en").num_rows > 0


def test_index_shards_are_checked_from_one_listing_and_their_records(monkeypatch):
    """Before mining, every index shard is checked: there, complete and built from the run's
    embeddings. On Cloud Storage, asking after each file was 11 requests per shard; now it is
    one listing per language and one request per shard's record (3 through Beam's file system),
    with each reading thread's storage client asking once for the bucket."""
    from indexes import shards
    from mining.json_files import THREADS

    record = {"encoder": "e", "dim": 8, "embeddings": "run-1", "factory": "Flat"}
    with gcs_bucket(monkeypatch) as root:
        index_dir = f"{root}/run/indexes"
        meta = write_index_shards(index_dir, "de", 40, record)
        with served() as traffic:
            assert shards.check_language(index_dir, "de", "run-1", 400, 8) == meta
        assert traffic["requests"] <= 40 + THREADS + 10
        with FileSystems.create(shards.shard_path(index_dir, "de", 7)) as out:
            out.write(bytes(99))
        with pytest.raises(shards.IndexShardError, match="shard-00007.faiss: incomplete: 99 bytes"):
            shards.check_language(index_dir, "de", "run-1", 400, 8)
        FileSystems.delete([shards.shard_record_path(shards.shard_path(index_dir, "de", 3))])
        with pytest.raises(shards.IndexShardError, match="de/shard-00003.json: missing"):
            shards.check_language(index_dir, "de", "run-1", 400, 8)


def test_a_rerun_on_cloud_storage_replaces_the_stage_and_leaves_no_work_files(
    tmp_path, monkeypatch
):
    """Cloud Storage has no directories: a stage rerun there must delete what is listed under
    its prefix, as must the commit with the mine stage's work files. Deleting the prefix's own
    name deleted nothing, so the work files stayed and a rerun in another mode mixed in the last
    run's selected blocks (on 2,000 rows a side: max 1,493 pairs, then union 2,140 instead of
    1,077, then max 3,586)."""
    import numpy as np

    from pipelines import index, mine
    from tests.synthetic_run import planted, write_embeddings

    de, en = planted(np.random.default_rng(5), 300, 500, 200, 16)
    local = str(tmp_path / "local")
    with gcs_bucket(monkeypatch) as root:
        run = f"{root}/run"
        for run_dir in (local, run):
            write_embeddings(run_dir, {"de": de, "en": en}, {"de": 100, "en": 150})
            index.run(run_dir, ["de", "en"], {"index_type": "flat", "shard_size": 130})
        for mode in ("max", "union", "max"):
            stats = mine.run(run, "de", "en", 4, "ratio", mode, threshold=1.0)
            mine.run(local, "de", "en", 4, "ratio", mode, threshold=1.0)
            expected = read_bitext(f"{local}/bitext/de-en")
            assert stats["kept"] == expected.num_rows
            assert scored_pairs(read_bitext(f"{run}/bitext/de-en")) == scored_pairs(expected)
            listed = FileSystems.match([f"{run}/bitext/de-en/**"])[0].metadata_list
            names = sorted(m.path.removeprefix(f"{run}/bitext/de-en/") for m in listed)
            assert names == ["README.md", "_SUCCESS.json", "part-00000.parquet", "stats.json"]

"""Every stage with its input and run directory on Google Cloud Storage (an emulator on
loopback), as on Dataflow: Beam's GCS file system and the google-cloud-storage client carry every
read and write, and the bitext is the one a local run gets: the same pairs, and scores within
1e-5. Two local runs of the same input differ by up to 5.5e-6 in some scores (measured in two
of three repeats): the default encoder's vectors of the same sentences came out one float16 step
(6.1e-5) apart, as a sentence's vector moves by up to 2e-7 with the other sentences in its batch,
and Beam forms the batches by their timing."""

import pytest
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from click.testing import CliRunner

from pipelines.cli import cli
from pipelines.mine import read_bitext
from pipelines.stage_dir import read_json
from tests.gcs_emulator import download, gcs_bucket
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


# What mine's stats hold beyond scores, which move in the last digits from run to run.
COUNTS = ("candidates", "kept", "dropped", "rounds", "accepted_per_round", "src_sentences")


def test_stages_run_with_input_and_run_directory_on_cloud_storage(tmp_path, monkeypatch):
    sample = cut_sample(tmp_path / "cut.warc.gz")
    run_stages(sample, str(tmp_path / "run"))
    local = read_bitext(str(tmp_path / "run" / "bitext" / "de-en"))
    local_stats = read_json(str(tmp_path / "run" / "bitext" / "de-en" / "stats.json"))
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
        remote = scored_pairs(read_bitext(f"{run}/bitext/de-en"))
        assert remote == pytest.approx(scored_pairs(local), rel=1e-5)
        stats = read_json(f"{run}/bitext/de-en/stats.json")
        assert {k: stats[k] for k in COUNTS} == {k: local_stats[k] for k in COUNTS}
        card = download(f"{run}/bitext/de-en/README.md").decode()
        assert f"{local.num_rows} sentence pairs mined from" in card
        assert f'ds.dataset("{run}/bitext/de-en", format="parquet"' in card
        assert f"read_parquet('{run}/bitext/de-en/part-*.parquet')" in card
        assert "DuckDB needs its\n`httpfs` extension and a GCS secret" in card

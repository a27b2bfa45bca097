"""Extract then embed on the real CommonCrawl samples with the tiny LaBSE-layout model."""

import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mining.embedding_store import (
    LAYOUT_NAME,
    list_shards,
    load_language,
    read_parquet,
    read_vectors,
)
from mining.encoders import load_encoder
from mining.extraction import ExtractConfig
from pipelines import embed, extract
from pipelines.cli import cli
from tests.tiny_encoder import make_tiny_labse
from tests.warc_factory import ENGLISH, GERMAN, gzip_members, html_response, page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def extracted(shared_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    paths = [
        str(shared_data / "warc" / "resiliparse" / "CC-MAIN-2020-34-excerpt.warc.gz"),
        str(shared_data / "warc" / "dolma" / "sample-0000.warc.gz"),
    ]
    stats = extract.run(paths, str(run_dir), ExtractConfig(langs=("de", "en")))
    return run_dir, stats


def test_embed_shards_line_up_with_ids(extracted, tmp_path):
    run_dir, extract_stats = extracted
    model_dir = make_tiny_labse(tmp_path / "tiny", list(GERMAN + ENGLISH))
    stats = embed.run(
        str(run_dir),
        str(model_dir),
        ["de", "en"],
        device="cpu",
        batch_size=8,
        chunk_size=64,
        rows_per_shard=200,
    )
    assert stats["embedded"] == extract_stats["sentences_kept"]
    on_disk = json.loads((run_dir / "embeddings" / "stats.json").read_text())
    assert on_disk["embedded"] == stats["embedded"] and on_disk["dtype"] == "float16"

    shards = list_shards(str(run_dir / "embeddings"), "en")
    assert len(shards) == -(-extract_stats["sentences_kept"]["en"] // 200)  # ceil
    encoder = load_encoder(str(model_dir), device="cpu")
    for npy, parquet in shards[:2]:
        vectors, ids = read_vectors(npy), read_parquet(parquet)
        assert vectors.dtype == np.float16 and vectors.shape == (ids.num_rows, 16)
        hashes = ids.column("hash").to_pylist()
        assert hashes == sorted(hashes)
        expected = encoder.encode(ids.column("text").to_pylist()[:20])
        np.testing.assert_allclose(vectors[:20].astype(np.float32), expected, atol=2e-3)

    for lang in ("de", "en"):  # each language's layout file records every shard as written
        layout = json.loads((run_dir / "embeddings" / f"lang={lang}" / LAYOUT_NAME).read_text())
        listed = [npy for npy, _ in list_shards(str(run_dir / "embeddings"), lang)]
        assert [record["npy"] for record in layout["shards"]] == list(map(os.path.basename, listed))
        for record, npy in zip(layout["shards"], listed, strict=True):
            shape, size = np.load(npy, mmap_mode="r").shape, os.path.getsize(npy)
            assert record == {"npy": record["npy"], "dtype": "float16", "bytes": size} | {
                "rows": shape[0],
                "dim": shape[1],
            }

    vectors, ids = load_language(str(run_dir / "embeddings"), "de")
    assert vectors.dtype == np.float32 and len(vectors) == ids.num_rows
    assert set(ids.column_names) == {"hash", "text", "url", "record_id", "position"}


def test_embed_cli_errors_in_one_line(extracted, tmp_path):
    run_dir, _ = extracted
    result = CliRunner().invoke(
        cli, ["embed", "--run", str(run_dir), "--encoder", "./no/such/model"]
    )
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "ccmine: error: encoder not found: ./no/such/model (no directory ./no/such/model)"
    )

    result = CliRunner().invoke(
        cli, ["embed", "--run", str(tmp_path / "empty"), "--encoder", "x/y"]
    )
    assert result.exit_code == 2 and "run `ccmine extract` first" in result.stderr


def test_a_damaged_sentences_part_stops_embed_naming_it(extracted, tmp_path):
    """Before, Beam's Parquet source failed with pyarrow's traceback, naming no file."""
    run_dir = tmp_path / "run"
    shutil.copytree(extracted[0] / "sentences", run_dir / "sentences")
    (part,) = (run_dir / "sentences" / "lang=en").glob("*.parquet")
    data = bytearray(part.read_bytes())
    data[200:600] = bytes(b ^ 0x5A for b in data[200:600])  # inside the first column chunk
    part.write_bytes(bytes(data))
    args = ["embed", "--run", str(run_dir), "--encoder", "bundled", "--langs", "de,en"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"ccmine: error: {part}, row group 0: unreadable (")
    assert result.stderr.endswith("); extract again (ccmine extract, or ccmine run --force)\n")
    assert "Traceback" not in result.output
    assert not (run_dir / "embeddings").exists()


def test_a_language_without_sentences_is_refused_before_encoding(extracted, tmp_path):
    """Asked for a language the extract stage kept none of (an empty lang= directory) or was not
    asked for (no directory), embed stops with one line instead of leaving it out silently."""
    run_dir = tmp_path / "run"
    sentences = run_dir / "sentences"
    shutil.copytree(extracted[0] / "sentences", sentences)
    schema = pq.read_schema(next((sentences / "lang=de").glob("*.parquet")))
    (sentences / "lang=th").mkdir()
    pq.write_table(schema.empty_table(), sentences / "lang=th" / "part-00000-of-00001.parquet")
    embed_cli = ["embed", "--run", str(run_dir), "--encoder", "muse", "--any-language"]
    for lang, reason in (("th", "the extract stage kept none"), ("fr", "was not asked for fr")):
        result = CliRunner().invoke(cli, [*embed_cli, "--langs", f"de,{lang}"])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
        assert f"ccmine: error: no {lang} sentences in {sentences}: " in result.stderr
        assert reason in result.stderr
    assert not (run_dir / "embeddings").exists()


def test_empty_sentences_are_dropped_and_counted(monkeypatch):
    counted = []
    monkeypatch.setattr(embed, "_count", lambda name, n=1: counted.append((name, n)))
    assert embed._keep_nonempty({"text": "Hallo Welt."})
    assert not embed._keep_nonempty({"text": "   "}) and not embed._keep_nonempty({"text": ""})
    assert counted == [("dropped:empty", 1), ("dropped:empty", 1)]


def test_vectors_do_not_depend_on_how_the_runner_batches(extracted, tmp_path):
    """Each shard is encoded in chunks cut from its rows sorted by length, whatever order the
    rows arrive in; the stored vectors (float32 here, so that no difference rounds away) equal
    encoding those chunks, bit for bit."""
    import random
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(extracted[0] / "sentences", run_dir / "sentences")
    model_dir = make_tiny_labse(tmp_path / "tiny", list(GERMAN + ENGLISH))
    embed.run(
        str(run_dir), str(model_dir), ["en"], "cpu", batch_size=8, chunk_size=64, dtype="float32"
    )
    npy, parquet = list_shards(str(run_dir / "embeddings"), "en")[0]
    ids = read_parquet(parquet)
    rows = [{"text": r["text"], "hash": r["hash"]} for r in ids.to_pylist()]
    random.Random(0).shuffle(rows)
    chunks = list(embed._shard_chunks((("en", 0), rows), 64))
    assert [len(c.rows) for c in chunks[:-1]] == [64] * (len(chunks) - 1)
    lengths = [len(text) for chunk in chunks for text in chunk.texts]
    assert lengths == sorted(lengths) and len(lengths) == ids.num_rows

    encoder = load_encoder(str(model_dir), device="cpu")
    expected = {}
    for chunk in chunks:
        for row, vector in zip(chunk.rows, encoder.encode(chunk.texts, 8), strict=True):
            expected[row["hash"]] = vector
    stored = read_vectors(npy)
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, [expected[h] for h in ids.column("hash").to_pylist()])


def test_shards_are_counted_from_the_content_ids_without_opening_sentence_files(
    tmp_path, monkeypatch
):
    (tmp_path / "lang=de").mkdir()
    rows = [{"text": f"Satz {i}.", "lang": "de"} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "lang=de" / "part-0.parquet")
    read = []
    count_rows = embed.count_rows
    monkeypatch.setattr(embed, "count_rows", lambda files: read.append(files) or count_rows(files))
    assert embed.shard_counts(str(tmp_path), {"de": "5:00000000000000ff"}, 2) == {"de": 3}
    assert not read
    # sentences dropped in by hand have the stage's run id instead: their footers are read
    assert embed.shard_counts(str(tmp_path), {"de": "3f9a0c1e" * 4}, 2) == {"de": 3}
    assert len(read) == 1


def test_without_langs_embed_and_index_take_the_languages_of_the_run(tmp_path, caplog):
    """embed: every language the extract stage kept sentences of that the encoder covers (fr is
    named, not embedded: the bundled encoder knows de, en and zh; th had no sentences); index:
    every language embedded."""
    french = "La ville se trouve au bord d'un grand lac et attire beaucoup de visiteurs en été."
    crawl = tmp_path / "crawl.warc.gz"
    crawl.write_bytes(
        gzip_members(html_response("http://x/", page("t", *GERMAN, *ENGLISH, french)))
    )
    run_dir = str(tmp_path / "run")
    commands = (
        ["extract", "--input", str(crawl), "--output", run_dir, "--langs", "de,en,fr,th"],
        ["embed", "--run", run_dir, "--encoder", "bundled"],
        ["index", "--run", run_dir],
    )
    caplog.set_level("INFO", logger="ccmine")
    results = [CliRunner().invoke(cli, args) for args in commands]
    for result in results:
        assert result.exit_code == 0, result.output
    for lang, sentences in (("de", GERMAN), ("en", ENGLISH)):  # progress, shard by shard
        assert f"embed: {lang} shard 0 written, {len(sentences)} sentences" in caplog.text
        assert f"index {lang}: shard 0 built, {len(sentences)} vectors in " in caplog.text
    assert results[1].stderr == (
        "embed: fr not embedded: encoder 'bundled' does not cover them "
        "(--any-language embeds them anyway)\n"
    )
    embedded = json.loads((tmp_path / "run" / "embeddings" / "_SUCCESS.json").read_text())
    assert sorted(embedded["config"]["langs"]) == ["de", "en"]
    assert results[2].output.splitlines() == [
        f"de: {len(GERMAN)} vectors in 1 shard(s), Flat",
        f"en: {len(ENGLISH)} vectors in 1 shard(s), Flat",
    ]


@pytest.mark.parametrize(
    "outputs,message",
    [
        ({"th": "0:0000000000000000"}, "holds no sentences to embed"),
        (
            {"fr": "12:00000000000000ab"},
            "encoder 'bundled' covers none of the run's languages (fr)",
        ),
    ],
)
def test_without_langs_a_run_with_nothing_to_embed_is_one_line(tmp_path, outputs, message):
    (tmp_path / "sentences").mkdir()
    marker = {"stage": "sentences", "config": {"langs": list(outputs)}, "outputs": outputs}
    (tmp_path / "sentences" / "_SUCCESS.json").write_text(json.dumps(marker))
    result = CliRunner().invoke(cli, ["embed", "--run", str(tmp_path), "--encoder", "bundled"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert message in result.stderr and result.stderr.startswith("ccmine: error: ")

"""Stage outputs per language: which languages a rerun can take over, and how it takes them."""

import json

import pytest

from pipelines.stage_dir import (
    StageWriter,
    is_complete,
    output_ids,
    require_complete,
    reusable_langs,
)

CONFIG = {"langs": {"de": "de-input", "en": "en-input"}, "index_args": {"shard_size": 10}}


def built(run_dir, config=CONFIG):
    """An index-like stage output: a directory and a metadata file per language."""
    writer = StageWriter(str(run_dir), "indexes")
    for lang in config["langs"]:
        (run_dir / writer.work / lang).mkdir(parents=True)
        (run_dir / writer.work / lang / "shard-00000.faiss").write_text(f"{lang} index")
        (run_dir / writer.work / f"{lang}.json").write_text("{}")
    writer.commit({}, config, {lang: f"{lang}-output" for lang in config["langs"]})
    return run_dir / "indexes"


def test_a_language_is_reusable_only_from_the_same_input_and_configuration(tmp_path):
    built(tmp_path)
    same_de = {**CONFIG, "langs": {"de": "de-input", "en": "changed", "fr": "fr-input"}}
    assert reusable_langs(str(tmp_path), "indexes", same_de) == ["de"]
    other_args = {**CONFIG, "index_args": {"shard_size": 20}}
    assert reusable_langs(str(tmp_path), "indexes", other_args) == []
    assert reusable_langs(str(tmp_path / "nothing"), "indexes", CONFIG) == []
    assert is_complete(str(tmp_path), "indexes", {**CONFIG, "langs": {"en": "en-input"}})
    assert not is_complete(str(tmp_path), "indexes", same_de)
    assert output_ids(str(tmp_path), "indexes", ["de"]) == {"de": "de-output"}


def test_a_damaged_marker_makes_the_stage_incomplete_with_a_warning(tmp_path, caplog):
    """Before, `ccmine run` and the stage reading it stopped with a traceback."""
    marker = built(tmp_path) / "_SUCCESS.json"
    marker.write_text(marker.read_text()[:50])
    assert not is_complete(str(tmp_path), "indexes", CONFIG)
    assert f"{marker}: not a JSON record (" in caplog.text
    assert "the stage counts as incomplete" in caplog.text
    with pytest.raises(FileNotFoundError, match="indexes is missing or incomplete"):
        require_complete(str(tmp_path), "indexes")


def test_output_without_content_ids_is_known_by_its_run_id(tmp_path):
    writer = StageWriter(str(tmp_path), "embeddings")
    writer.commit({}, {"encoder": "dropped-in"})
    run_id = json.loads((tmp_path / "embeddings" / "_SUCCESS.json").read_text())["run_id"]
    assert output_ids(str(tmp_path), "embeddings", ["de", "en"]) == {"de": run_id, "en": run_id}


def test_a_rerun_takes_over_the_kept_paths_as_they_are(tmp_path):
    final = built(tmp_path)
    shard = final / "de" / "shard-00000.faiss"
    inode = shard.stat().st_ino
    writer = StageWriter(str(tmp_path), "indexes", keep=["de", "de.json"])
    assert not (tmp_path / writer.work / "en").exists()
    (tmp_path / writer.work / "fr").mkdir()
    writer.commit({}, {**CONFIG, "langs": {"de": "de-input", "fr": "fr-input"}})
    assert shard.stat().st_ino == inode and shard.read_text() == "de index"
    assert (final / "de.json").exists() and (final / "fr").is_dir()
    assert not (final / "en").exists() and not (final / "en.json").exists()

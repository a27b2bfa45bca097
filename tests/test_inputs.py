import gzip

import pytest

from mining.inputs import crawl_manifest, read_manifest, resolve_inputs


def test_glob_and_max_files(tmp_path):
    for name in ("b.warc.gz", "a.warc.gz", "c.wet.gz"):
        (tmp_path / name).write_bytes(b"")
    assert [p.split("/")[-1] for p in resolve_inputs([str(tmp_path / "*.warc.gz")])] == [
        "a.warc.gz",
        "b.warc.gz",
    ]
    assert len(resolve_inputs([str(tmp_path / "*")], max_files=2)) == 2


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no input matches .*nothing-here"):
        resolve_inputs([str(tmp_path / "nothing-here*.warc.gz")])


def test_manifest_paths_are_made_absolute(tmp_path):
    manifest = tmp_path / "wet.paths.gz"
    manifest.write_bytes(gzip.compress(b"crawl-data/X/a.wet.gz\ncrawl-data/X/b.wet.gz\n"))
    assert read_manifest(str(manifest), "https://data.commoncrawl.org/") == [
        "https://data.commoncrawl.org/crawl-data/X/a.wet.gz",
        "https://data.commoncrawl.org/crawl-data/X/b.wet.gz",
    ]


def test_crawl_shortcut():
    assert (
        crawl_manifest("CC-MAIN-2024-22")
        == "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/wet.paths.gz"
    )
    assert crawl_manifest("CC-MAIN-2024-22", "warc").endswith("/CC-MAIN-2024-22/warc.paths.gz")

import gzip

import pytest
from click.testing import CliRunner

from mining import http_stream
from mining.inputs import crawl_manifest, read_manifest, resolve_inputs
from mining.warc_records import BadInputError
from pipelines.cli import cli
from tests.conftest import free_port


def test_glob_and_max_files(tmp_path):
    for name in ("b.warc.gz", "a.warc.gz", "c.wet.gz"):
        (tmp_path / name).write_bytes(b"")
    assert [p.split("/")[-1] for p in resolve_inputs([str(tmp_path / "*.warc.gz")])] == [
        "a.warc.gz",
        "b.warc.gz",
    ]
    assert len(resolve_inputs([str(tmp_path / "*")], max_files=2)) == 2


def test_max_files_takes_the_first_files_and_names_a_source_cut_off(tmp_path, caplog):
    for name in ("one/a.warc.gz", "one/b.warc.gz", "two/c.warc.gz"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    sources = [str(tmp_path / "one"), str(tmp_path / "two")]
    assert resolve_inputs(sources, max_files=3) == [
        str(tmp_path / name) for name in ("one/a.warc.gz", "one/b.warc.gz", "two/c.warc.gz")
    ]
    assert "--max-files" not in caplog.text
    assert resolve_inputs(sources, max_files=2)[-1] == str(tmp_path / "one" / "b.warc.gz")
    assert f"--max-files 2: no file of {tmp_path / 'two'} is read" in caplog.text


def test_a_directory_gives_the_warc_and_wet_files_under_it(tmp_path, caplog):
    """At any depth, as in a copy of CommonCrawl's crawl-data tree; its WAT metadata files,
    manifests and other files are skipped and counted in the log."""
    warcs = ["plain.warc", "s1/warc/a.warc.gz", "s1/wet/a.warc.wet.gz", "s2/warc/b.warc.gz"]
    others = ["notes.txt", "s2/wat/b.warc.wat.gz", "wet.paths.gz"]
    for name in warcs + others:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    for given in (str(tmp_path), f"{tmp_path}/"):
        assert resolve_inputs([given]) == sorted(str(tmp_path / name) for name in warcs)
    assert f"{tmp_path}: 3 files not named *.warc, *.warc.gz, *.wet or *.wet.gz skipped" in (
        caplog.text
    )
    with pytest.raises(
        FileNotFoundError, match=r"no WARC or WET files \(\*\.warc, .* under .*/s2/wat"
    ):
        resolve_inputs([str(tmp_path / "s2" / "wat")])


def test_names_with_glob_characters_are_taken_as_written(tmp_path):
    """A file or directory whose name holds [ ] is what it names (before: read as a pattern, so
    "crawl [1].warc.gz" matched nothing, or "crawl 1.warc.gz" beside it); a pattern that names
    no file is still a pattern."""
    for name in ("crawl [1].warc.gz", "crawl 1.warc.gz", "in [1]/a.warc.gz", "in 1/b.warc.gz"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    named = str(tmp_path / "crawl [1].warc.gz")
    assert resolve_inputs([named]) == [named]
    assert resolve_inputs([str(tmp_path / "in [1]")]) == [str(tmp_path / "in [1]" / "a.warc.gz")]
    pattern = str(tmp_path / "crawl [0-9].warc.gz")
    assert resolve_inputs([pattern]) == [str(tmp_path / "crawl 1.warc.gz")]


def test_a_file_named_twice_is_read_once(tmp_path, caplog):
    for name in ("a.warc.gz", "b.warc.gz"):
        (tmp_path / name).write_bytes(b"")
    given = [str(tmp_path / "b.warc.gz"), str(tmp_path), str(tmp_path / "*.warc.gz")]
    assert resolve_inputs(given) == [str(tmp_path / "b.warc.gz"), str(tmp_path / "a.warc.gz")]
    assert "3 inputs named more than once are read once" in caplog.text


def test_a_bucket_prefix_is_a_directory(monkeypatch):
    """On Cloud Storage, which has no directories, with or without the trailing slash; a prefix
    that merely starts the same (crawl-2/) is not inside it."""
    from apache_beam.io.filesystems import FileSystems

    from tests.gcs_emulator import gcs_bucket

    with gcs_bucket(monkeypatch) as root:
        names = ["crawl/b.wet.gz", "crawl/s1/a.warc.gz", "crawl-2/c.warc.gz", "crawl/wet.paths"]
        for name in names:
            FileSystems.create(f"{root}/{name}").close()
        for given in (f"{root}/crawl", f"{root}/crawl/"):
            assert resolve_inputs([given]) == [
                f"{root}/crawl/b.wet.gz",
                f"{root}/crawl/s1/a.warc.gz",
            ]
        with pytest.raises(FileNotFoundError, match=f"^no input matches {root}/nothing$"):
            resolve_inputs([f"{root}/nothing"])


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no input matches .*nothing-here"):
        resolve_inputs([str(tmp_path / "nothing-here*.warc.gz")])


def test_missing_input_or_unreadable_manifest_is_one_line_from_the_cli(tmp_path, monkeypatch):
    missing = str(tmp_path / "nothing-here.warc.gz")
    for command in (["run", "--src", "de"], ["extract"]):
        args = [*command, "--input", missing, "--output", str(tmp_path / "run")]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        assert result.stderr == f"ccmine: error: no input matches {missing}\n"
    cut = tmp_path / "cut.paths.gz"
    cut.write_bytes(gzip.compress(b"crawl-data/X/a.wet.gz\n" * 50)[:-12])
    result = CliRunner().invoke(cli, ["extract", "--input", str(cut), "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"ccmine: bad input: {cut}: manifest not readable: ")
    assert result.stderr.count("\n") == 1
    monkeypatch.setattr(http_stream, "BACKOFF_S", 0.0)  # a refused connection is retried
    url = f"http://127.0.0.1:{free_port()}/wet.paths.gz"  # loopback, nothing listening
    with pytest.raises(BadInputError, match=f"{url}: manifest not readable: .*refused"):
        read_manifest(url)


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

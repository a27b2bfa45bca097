"""The extract stage as a Beam pipeline on the real CommonCrawl samples and on damaged input."""

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mining import http_stream
from mining.extraction import ExtractConfig
from pipelines import extract
from pipelines.cli import cli
from pipelines.counts import total
from pipelines.stage_dir import MARKER
from tests.flaky_http import flaky_server
from tests.warc_factory import (
    CHINESE,
    ENGLISH,
    GERMAN,
    gzip_members,
    html_response,
    page,
    warc_record,
)

pytestmark = pytest.mark.slow


def read_sentences(run_dir: Path, lang: str):
    files = sorted((run_dir / "sentences" / f"lang={lang}").glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def check_balances(stats):
    """read = used + skipped for records; split = kept + dropped for sentences."""
    assert total(stats, "records_read") == stats.get("records_used", 0) + total(
        stats, "records_skipped"
    )
    assert stats.get("sentences_split", 0) == total(stats, "sentences_kept") + total(
        stats, "sentences_dropped"
    )


def real_samples(shared_data) -> list[str]:
    warc = shared_data / "warc"
    return [
        str(warc / "resiliparse" / "CC-MAIN-2020-34-excerpt.warc.gz"),
        str(warc / "dolma" / "sample-0000.warc.gz"),
        str(warc / "whirlwind" / "whirlwind.warc.gz"),
        str(warc / "whirlwind" / "whirlwind.warc.wet.gz"),
        str(warc / "cc_net" / "sample.warc.wet.txt"),  # hand-made: LF, wrong Content-Lengths
    ]


def test_real_commoncrawl_samples(shared_data, tmp_path):
    paths = real_samples(shared_data)
    stats = extract.run(paths, str(tmp_path), ExtractConfig(langs=("de", "en", "zh", "ru")))
    check_balances(stats)
    assert stats["files_read"] == 5 and "files_with_errors" not in stats
    assert stats["records_read"]["response"] == 39 and stats["records_read"]["conversion"] == 4
    # cc_net's four records: none ends where its length says, none becomes a page
    assert stats["records_skipped"]["bad_content_length"] == 4 and stats["resynced"] == 4
    assert stats["sentences_dropped"]["duplicate"] > 0

    on_disk = json.loads((tmp_path / "sentences" / "stats.json").read_text())
    assert on_disk["sentences_kept"] == stats["sentences_kept"]
    assert (tmp_path / "sentences" / MARKER).exists()

    english = read_sentences(tmp_path, "en")
    german = read_sentences(tmp_path, "de")
    chinese = read_sentences(tmp_path, "zh")
    assert len(english) == stats["sentences_kept"]["en"] > 500
    assert len(german) == stats["sentences_kept"]["de"] > 0
    assert len(chinese) == stats["sentences_kept"]["zh"] > 50
    assert any("live-radsport.ch" in row["url"] for row in german)
    # Each language's content id, in the marker: its rows' count and the sum of their ids,
    # which later stages record as their input to tell which languages changed.
    outputs = json.loads((tmp_path / "sentences" / MARKER).read_text())["outputs"]
    for lang, rows in (("en", english), ("de", german), ("zh", chinese)):
        assert outputs[lang] == f"{len(rows)}:{sum(map(extract.row_id, rows)) % 2**64:016x}"
    # Under the LID threshold only sentences the document vouched for, each counted (before
    # de-duplication, which drops some of them again).
    unsure = [row for row in english + german + chinese if row["lid_prob"] < 0.5]
    assert 0 < len(unsure) <= stats["sentences_lid_vouched_by_document"]
    assert len(unsure) < 0.2 * len(english + german + chinese)
    # Exact de-duplication: no (lang, hash) twice.
    assert len({row["hash"] for row in english}) == len(english)
    # Plausible LID: the German sample sentences are German, the English ones English.
    assert sum(row["url"].startswith("https://www.semanticscholar.org") for row in english) > 50


def test_each_language_is_cut_into_parts_by_hash_that_reruns_write_alike(
    shared_data, tmp_path, monkeypatch
):
    monkeypatch.setattr(extract, "ROWS_PER_PART", 200)
    paths = real_samples(shared_data)
    config = ExtractConfig(langs=("en", "de", "sw"))
    stats = extract.run(paths, str(tmp_path / "a"), config)
    extract.run(paths, str(tmp_path / "b"), config)
    kept = stats["sentences_kept"]["en"]
    parts = -(-kept // 200)
    assert parts >= 3
    files = sorted((tmp_path / "a" / "sentences" / "lang=en").iterdir())
    assert [f.name for f in files] == [f"part-{k:05d}-of-{parts:05d}.parquet" for k in range(parts)]
    rows = 0
    for k, path in enumerate(files):
        part = pq.read_table(path).to_pylist()
        rows += len(part)
        assert all(row["hash"] % parts == k for row in part)
        order = [(row["url"], row["record_id"], row["position"]) for row in part]
        assert order == sorted(order)
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    assert rows == kept
    # A language asked for and not found: one empty part says it was asked for.
    empty = list((tmp_path / "a" / "sentences" / "lang=sw").iterdir())
    assert [f.name for f in empty] == ["part-00000-of-00001.parquet"]
    assert pq.read_metadata(empty[0]).num_rows == 0 and "sw" not in stats["sentences_kept"]


def test_counts_and_skips_on_damaged_files(tmp_path):
    good = gzip_members(html_response("http://ok.example/de", page("Ort", *GERMAN, *ENGLISH)))
    broken_http = gzip_members(
        html_response("http://b.example/1", page("x", *GERMAN), head="BROKEN\r\n\r\n"),
        html_response("http://b.example/2", page("y", *ENGLISH)),
    )
    files = {
        "good.warc.gz": good,
        "truncated.warc.gz": good[:-80],
        "notwarc.warc.gz": gzip.compress(b"just text\n"),
        "empty.warc.gz": b"",
        "corrupt.warc.gz": bytes(CORRUPT),
        "undecodable.warc.gz": UNDECODABLE,
        "broken_http.warc.gz": broken_http,
        "huge.warc.gz": gzip_members(html_response("http://h.example/", page("h", *GERMAN * 5000))),
        "bad_length.warc": warc_record(
            "http://c.example/",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>abc</p>",
            declared_length=9999,
        ),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = sorted(str(tmp_path / name) for name in files)
    run_dir = tmp_path / "run"
    stats = extract.run(
        paths, str(run_dir), ExtractConfig(langs=("de", "en")), max_record_bytes=100_000
    )
    check_balances(stats)
    assert stats["files_with_errors"] == {"not_warc": 1, "empty_file": 1}
    assert stats["resynced"] == 3 and stats["bytes_skipped"] > 0  # corrupt, truncated, bad_length
    assert stats["records_skipped"]["bad_http_headers"] == 1
    assert stats["records_skipped"]["undecodable"] == 1
    assert stats["records_skipped"]["too_large"] == 1
    assert stats["records_skipped"]["truncated_record"] == 2
    # good, corrupt's first record and broken_http's second; duplicate sentences collapse.
    assert stats["records_used"] == 3
    assert [r["text"] for r in read_sentences(run_dir, "de")] == list(GERMAN)


GOOD_PAGE = gzip_members(html_response("http://ok.example/de", page("Ort", *GERMAN, *ENGLISH)))
CORRUPT = bytearray(GOOD_PAGE * 2)
CORRUPT[len(GOOD_PAGE) + 12 : len(GOOD_PAGE) + 40] = b"\x00" * 28
UNDECODABLE = gzip_members(
    warc_record(
        "http://u.example/",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + b"\x81\x8d\x8f\x90\x9d" * 200,
    )
)


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("notwarc.warc.gz", gzip.compress(b"just text\n"), "not_warc"),
        ("empty.warc.gz", b"", "empty_file"),
        (
            "bad_http.warc.gz",
            gzip_members(html_response("http://b/", "x", head="NOPE\r\n\r\n")),
            "bad_http_headers",
        ),
        ("truncated.warc.gz", GOOD_PAGE[:-80], "truncated_record"),
        ("corrupt.warc.gz", bytes(CORRUPT), "resynced"),
        (
            "huge.warc.gz",
            gzip_members(html_response("http://h/", page("h", *GERMAN * 5000))),
            "too_large",
        ),
        ("undecodable.warc.gz", UNDECODABLE, "undecodable"),
    ],
)
def test_strict_mode_is_one_line_and_exit_2(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    result = CliRunner().invoke(
        cli,
        [
            "extract",
            "--input",
            str(path),
            "--output",
            str(tmp_path / "run"),
            "--strict",
            "--max-record-bytes",
            "100000",
        ],
    )
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("ccmine:")]
    assert len(lines) == 1 and str(path) in lines[0] and "offset" in lines[0] and reason in lines[0]
    assert "Traceback" not in result.output
    # Nothing that looks complete is left behind.
    assert not (tmp_path / "run" / "sentences").exists()
    # The temporary place is kept for a resume, but holds no marker.
    assert not list((tmp_path / "run").glob(".sentences.tmp-*/" + MARKER))


def test_reads_warc_by_url_and_manifest(tmp_path):
    rel = [f"crawl-data/CC-MAIN-2099-01/segments/1/wet/part-{i}.warc.gz" for i in range(2)]
    files = {
        f"/{path}": gzip_members(html_response(f"http://site{i}.example/", page("t", *text)))
        for i, (path, text) in enumerate(zip(rel, [GERMAN, ENGLISH], strict=True))
    }
    files["/crawl-data/CC-MAIN-2099-01/wet.paths.gz"] = gzip.compress("\n".join(rel).encode())
    later = "crawl-data/CC-MAIN-2099-02/segments/1/wet/part-0.warc.gz"
    files[f"/{later}"] = gzip_members(html_response("http://zh.example/", page("t", *CHINESE)))
    files["/crawl-data/CC-MAIN-2099-02/wet.paths.gz"] = gzip.compress(later.encode())
    with flaky_server(files) as (base, _):
        run_dir = tmp_path / "run"
        result = CliRunner().invoke(
            cli,
            [
                "extract",
                "--crawl",
                "CC-MAIN-2099-01",
                "--cc-base-url",
                base,
                "--max-files",
                "1",
                "--output",
                str(run_dir),
                "--langs",
                "de,en",
            ],
        )
        assert result.exit_code == 0, result.output
        assert [r["text"] for r in read_sentences(run_dir, "de")] == list(GERMAN)
        assert read_sentences(run_dir, "en") == []

        # Several crawls: each one's files (before: only the last --crawl was read).
        crawls = ["--crawl", "CC-MAIN-2099-01", "--crawl", "CC-MAIN-2099-02", "--cc-base-url", base]
        options = ["--output", str(tmp_path / "both"), "--langs", "de,en,zh"]
        result = CliRunner().invoke(cli, ["extract", *crawls, *options])
        assert result.exit_code == 0, result.output
        texts = {
            lang: [r["text"] for r in read_sentences(tmp_path / "both", lang)]
            for lang in "de en zh".split()
        }
        assert texts == {"de": list(GERMAN), "en": list(ENGLISH), "zh": list(CHINESE)}

        run_dir2 = tmp_path / "run2"
        stats = extract.run([f"{base}/{rel[1]}"], str(run_dir2), ExtractConfig(langs=("en",)))
        assert stats["sentences_kept"] == {"en": 2}
        assert all(r["source"] == f"{base}/{rel[1]}" for r in read_sentences(run_dir2, "en"))


def test_a_busy_server_and_a_broken_download_lose_nothing(tmp_path, monkeypatch):
    """As data.commoncrawl.org under load: the first request is refused (503), the download
    breaks off halfway; the sentences equal a local read's and both events are counted."""
    monkeypatch.setattr(http_stream, "BACKOFF_S", 0.0)
    records = [
        html_response(f"http://site{i}.example/", page(f"Seite {i}", *GERMAN)) for i in range(3)
    ]
    local = tmp_path / "part.warc.gz"
    local.write_bytes(gzip_members(*records))
    expected = extract.run([str(local)], str(tmp_path / "local"), ExtractConfig(langs=("de",)))

    plan = ["503", f"cut:{local.stat().st_size // 2}"]
    files = {"/part.warc.gz": local.read_bytes()}
    with flaky_server(files, {"/part.warc.gz": plan}) as (base, server):
        url = f"{base}/part.warc.gz"
        stats = extract.run([url], str(tmp_path / "run"), ExtractConfig(langs=("de",)))
    assert len(server.requests) == 3 and server.requests[-1][1].startswith("bytes=")
    assert stats["http_retries"] == 1 and stats["http_resumes"] == 1
    assert stats["records_used"] == expected["records_used"] == 3
    got = [(r["url"], r["text"]) for r in read_sentences(tmp_path / "run", "de")]
    assert got == [(r["url"], r["text"]) for r in read_sentences(tmp_path / "local", "de")]


def test_record_types_outside_the_specification_count_as_other(tmp_path):
    damaged = warc_record("http://x.example/", b"data", rec_type="\u00aerequest")
    path = tmp_path / "types.warc.gz"
    path.write_bytes(
        gzip_members(damaged, html_response("http://ok.example/", page("Ort", *GERMAN)))
    )
    stats = extract.run([str(path)], str(tmp_path / "run"), ExtractConfig(langs=("de",)))
    assert stats["records_read"] == {"other": 1, "response": 1}


def test_a_directory_of_crawl_files_is_read_whole(tmp_path):
    crawl = tmp_path / "crawl"
    for name, text in (("s1/warc/de.warc.gz", GERMAN), ("s2/warc/en.warc.gz", ENGLISH)):
        (crawl / name).parent.mkdir(parents=True)
        (crawl / name).write_bytes(gzip_members(html_response(f"http://{name}/", page("t", *text))))
    (crawl / "README.txt").write_text("not a crawl file")
    args = ["extract", "--input", str(crawl), "--output", str(tmp_path / "run"), "--langs", "de,en"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert [r["text"] for r in read_sentences(tmp_path / "run", "de")] == list(GERMAN)
    assert [r["text"] for r in read_sentences(tmp_path / "run", "en")] == list(ENGLISH)
    stats = json.loads((tmp_path / "run" / "sentences" / "stats.json").read_text())
    assert stats["inputs"] == [str(crawl / "s1/warc/de.warc.gz"), str(crawl / "s2/warc/en.warc.gz")]


def test_language_codes_are_checked_and_all_means_every_lid_label(tmp_path):
    path = tmp_path / "de.warc.gz"
    path.write_bytes(gzip_members(html_response("http://ok.example/", page("Ort", *GERMAN))))
    args = ["extract", "--input", str(path), "--output", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, [*args, "--langs", "de,xx,qq"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "unknown language code 'xx', 'qq'" in result.stderr and " de, " in result.stderr
    run = ["run", "--input", str(path), "--output", "x", "--src"]
    result = CliRunner().invoke(cli, [*run, "de,dd"])
    assert result.exit_code == 2 and "unknown language code 'dd'" in result.stderr
    result = CliRunner().invoke(cli, [*run, "FR,zh-CN"])  # a code's other spellings
    assert "code 'FR' (did you mean fr?), 'zh-CN' (did you mean zh?); " in result.stderr
    result = CliRunner().invoke(cli, [*run, "de,en"])
    assert result.exit_code == 2 and "en is also --tgt; a pair needs two" in result.stderr

    from mining.langid import LanguageIdentifier

    result = CliRunner().invoke(cli, [*args, "--langs", "all"])
    assert result.exit_code == 0, result.output
    marker = json.loads((tmp_path / "run" / "sentences" / MARKER).read_text())
    assert marker["config"]["langs"] == LanguageIdentifier().languages()
    assert len(marker["config"]["langs"]) == 176
    assert read_sentences(tmp_path / "run", "de")  # German kept, as with --langs de


def test_strict_prints_one_line_and_no_traceback(tmp_path):
    path = tmp_path / "cut.warc.gz"
    whole = gzip_members(html_response("http://ok.example/", page("Ort", *GERMAN, *ENGLISH)))
    path.write_bytes(whole[: len(whole) // 2])
    import subprocess
    import sys

    from tests.conftest import REPO

    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "extract", "--input", str(path)]
        + ["--output", str(tmp_path / "run"), "--strict"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"ccmine: bad input: {path}: offset ")
    assert "while running" not in result.stderr

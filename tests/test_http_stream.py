"""Inputs read over HTTP: refused requests retried, broken downloads resumed, errors named."""

import os

import pytest
from click.testing import CliRunner

from mining import http_stream
from mining.http_stream import DownloadError, open_url
from pipelines.cli import cli
from tests.flaky_http import flaky_server

DATA = os.urandom(300_000)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(http_stream, "BACKOFF_S", 0.0)


def test_refused_requests_are_retried_and_a_broken_download_resumes_where_it_stopped():
    plan = ["503", "503", "cut:100000", "cut:50000", "full"]
    with flaky_server({"/a.warc.gz": DATA}, {"/a.warc.gz": plan}) as (base, server):
        with open_url(f"{base}/a.warc.gz") as stream:
            assert stream.read() == DATA
            assert (stream.raw.retries, stream.raw.resumes) == (2, 2)
    assert [asked for _, asked in server.requests] == [
        None,
        None,
        None,
        "bytes=100000-",
        "bytes=150000-",
    ]


def test_a_redirect_is_followed_and_not_counted_as_a_retry():
    plans = {"/old.warc.gz": ["moved:/a.warc.gz"], "/a.warc.gz": ["503"]}
    files = {"/old.warc.gz": b"", "/a.warc.gz": DATA}
    with flaky_server(files, plans) as (base, server):
        with open_url(f"{base}/old.warc.gz") as stream:
            assert stream.read() == DATA
            assert (stream.raw.retries, stream.raw.resumes) == (1, 0)
    assert [path for path, _ in server.requests] == ["/old.warc.gz", "/a.warc.gz", "/a.warc.gz"]


def test_a_server_that_ignores_range_is_read_past_what_was_delivered():
    plan = ["cut:1000", "ignore-range"]
    with flaky_server({"/a.warc.gz": DATA}, {"/a.warc.gz": plan}) as (base, _):
        with open_url(f"{base}/a.warc.gz") as stream:
            assert stream.read() == DATA
            assert stream.raw.resumes == 1


def test_small_reads_see_every_byte_once_across_breaks():
    plan = ["cut:7", "cut:70001", "cut:3"]
    with flaky_server({"/a.wet": DATA}, {"/a.wet": plan}) as (base, _):
        with open_url(f"{base}/a.wet") as stream:
            pieces = iter(lambda: stream.read(4099), b"")
            assert b"".join(pieces) == DATA


def test_errors_that_remain_name_the_url(monkeypatch):
    monkeypatch.setattr(http_stream, "ATTEMPTS", 3)
    plans = {"/busy": ["503"] * 10, "/breaking": ["cut:10"] + ["cut:0"] * 10}
    with flaky_server({"/busy": DATA, "/breaking": DATA}, plans) as (base, server):
        with pytest.raises(FileNotFoundError, match=f"{base}/gone: not found \\(HTTP 404\\)"):
            open_url(f"{base}/gone")
        with pytest.raises(DownloadError, match=f"{base}/busy: HTTP 503 .* \\(after 3 retries\\)"):
            open_url(f"{base}/busy")
        assert sum(path == "/busy" for path, _ in server.requests) == 4  # 1 + 3 retries
        with open_url(f"{base}/breaking") as stream:
            with pytest.raises(
                DownloadError, match=f"{base}/breaking: .*broke off at byte 10 4 times"
            ):
                stream.read()


def test_extract_reports_a_failed_download_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(http_stream, "ATTEMPTS", 2)
    with flaky_server({"/busy.warc.gz": DATA}, {"/busy.warc.gz": ["503"] * 10}) as (base, _):
        for path, line in [
            ("/busy.warc.gz", "download failed: {url}: HTTP 503 Service Unavailable (after 2"),
            ("/gone.warc.gz", "error: {url}: not found (HTTP 404)\n"),
        ]:
            url = f"{base}{path}"
            args = ["extract", "--input", url, "--output", str(tmp_path / path[1:5])]
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 2, result.output
            assert result.stderr.startswith("ccmine: " + line.format(url=url))
            assert result.stderr.count("\n") == 1

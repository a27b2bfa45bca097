import gzip
import io

import pytest

from mining.warc_records import Document, Skipped, iter_records
from tests.warc_factory import (
    GERMAN,
    gzip_members,
    html_response,
    page,
    warc_record,
    wet_conversion,
)


def events(data: bytes, max_bytes: int = 1 << 20):
    return list(iter_records(io.BytesIO(data), "test.warc.gz", max_bytes))


def reasons(evs):
    return [e.reason if isinstance(e, Skipped) else "doc" for e in evs]


def test_reads_html_response_and_wet_conversion():
    data = gzip_members(
        warc_record("", b"software: test\r\n", "warcinfo", "application/warc-fields"),
        html_response("http://example.de/a", page("Titel", *GERMAN)),
        wet_conversion("http://example.de/b", "\n".join(GERMAN)),
    )
    evs = events(data)
    assert reasons(evs) == ["record_type", "doc", "doc"]
    html, wet = evs[1], evs[2]
    assert html.is_html and html.url == "http://example.de/a" and html.charset == "utf-8"
    assert GERMAN[0].encode() in html.payload
    assert not wet.is_html and wet.payload.decode() == "\n".join(GERMAN)
    assert 0 == evs[0].offset < evs[1].offset < evs[2].offset


def test_truncated_gzip_keeps_earlier_records_and_flags_the_cut_one():
    first = gzip.compress(html_response("http://a/1", page("a", *GERMAN)))
    data = first + gzip.compress(html_response("http://a/2", page("b", *GERMAN)))
    evs = events(data[:-60])
    assert reasons(evs) == ["doc", "truncated_record", "resynced"]
    assert evs[1].offset == len(first) and evs[1].rec_type == "response"


def test_content_length_beyond_end_is_a_truncated_record():
    block = ("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + page("x", *GERMAN)).encode()
    data = warc_record("http://a/1", block, declared_length=len(block) + 500)
    evs = events(data)
    assert reasons(evs) == ["truncated_record", "resynced"]
    assert evs[0].rec_type == "response" and evs[1].skipped_bytes == len(data)


def test_corrupt_member_in_the_middle_costs_only_that_member():
    good = gzip.compress(html_response("http://a/1", page("a", *GERMAN)))
    bad = bytearray(gzip.compress(html_response("http://a/2", page("b", *GERMAN))))
    bad[12:40] = b"\x00" * 28
    evs = events(good + bytes(bad) + good)
    assert reasons(evs) == ["doc", "resynced", "doc"]
    assert evs[1].offset == len(good) and evs[1].skipped_bytes == len(bad)
    assert evs[2].offset == len(good) + len(bad)
    assert evs[1].describe() == (
        f"test.warc.gz: offset {len(good)}: resynced ({len(bad)} bytes skipped: damaged_member)"
    )


@pytest.mark.parametrize(
    "data", [b"hello, this is not a WARC file\n", gzip.compress(b"<html>nope</html>\n")]
)
def test_not_a_warc(data):
    assert reasons(events(data)) == ["not_warc"]


def test_empty_file():
    assert reasons(events(b"")) == ["empty_file"]


def test_broken_http_headers_skip_only_that_record():
    data = gzip_members(
        html_response("http://a/1", page("a", *GERMAN)),
        html_response("http://a/2", page("b", *GERMAN), head="GARBAGE STATUS\r\nX: y\r\n\r\n"),
        html_response("http://a/3", page("c", *GERMAN)),
    )
    assert reasons(events(data)) == ["doc", "bad_http_headers", "doc"]


def test_status_and_content_type_filters():
    data = gzip_members(
        html_response(
            "http://a/1",
            page("a"),
            head="HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n",
        ),
        html_response(
            "http://a/2",
            "%PDF-1.4",
            head="HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n\r\n",
        ),
    )
    assert reasons(events(data)) == ["http_status", "not_html"]


def test_enormous_page_is_skipped_without_stopping_the_file():
    huge = page("big", *(GERMAN * 2000))
    data = gzip_members(
        html_response("http://a/big", huge), html_response("http://a/ok", page("ok", *GERMAN))
    )
    assert reasons(events(data, max_bytes=50_000)) == ["too_large", "doc"]


def test_gzip_content_encoding_and_chunked_transfer_are_decoded():
    html = page("z", *GERMAN).encode()
    body = gzip.compress(html)
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    evs = events(warc_record("http://a/z", head + chunked))
    assert isinstance(evs[0], Document) and evs[0].payload == html


def test_angle_bracket_uris_are_unwrapped(shared_data):
    path = shared_data / "warc" / "dolma" / "sample-0000.warc.gz"
    with open(path, "rb") as stream:
        docs = [e for e in iter_records(stream, str(path)) if isinstance(e, Document)]
    # 22 pages; wget's own log and arguments (metadata:// resources) are not documents.
    assert len(docs) == 22
    assert all(d.url.startswith("https://") for d in docs)

"""Damaged copies of the bundled sample crawl: every record that is not itself damaged is
recovered, and no damaged record becomes a page."""

import gzip
import io
import re
import zlib

import numpy as np
import pytest

from mining.warc_records import Document, Skipped, iter_records
from tests.conftest import REPO

SAMPLE = (REPO / "data" / "sample" / "sample-crawl.warc.gz").read_bytes()


def member_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each gzip member."""
    spans, start = [], 0
    while start < len(data):
        inflate = zlib.decompressobj(31)
        inflate.decompress(data[start:])
        end = len(data) - len(inflate.unused_data)
        spans.append((start, end))
        start = end
    return spans


def read(data: bytes):
    """{url: payload} of the pages, and the other events."""
    events = list(iter_records(io.BytesIO(data), "copy.warc.gz"))
    pages = {e.url: e.payload for e in events if isinstance(e, Document)}
    return pages, [e for e in events if isinstance(e, Skipped)]


SPANS = member_spans(SAMPLE)
PAGES, _ = read(SAMPLE)
PAGE_OF_MEMBER = {}
for number, (start, end) in enumerate(SPANS):
    found, _ = read(SAMPLE[start:end])
    if found:
        PAGE_OF_MEMBER[number] = next(iter(found))


def pages_without(members) -> dict:
    lost = {PAGE_OF_MEMBER[m] for m in members if m in PAGE_OF_MEMBER}
    return {url: payload for url, payload in PAGES.items() if url not in lost}


def resyncs(skipped):
    return [s for s in skipped if s.reason == "resynced"]


def test_the_sample_has_one_page_per_page_member():
    assert len(SPANS) == 961 and len(PAGES) == len(PAGE_OF_MEMBER) == 320


def test_a_removed_member_costs_its_record_only():
    page_member = sorted(PAGE_OF_MEMBER)[10]
    start, end = SPANS[page_member]
    pages, skipped = read(SAMPLE[:start] + SAMPLE[end:])
    assert pages == pages_without([page_member]) and not resyncs(skipped)


def test_garbage_between_members_costs_nothing():
    start, _ = SPANS[100]
    garbage = np.random.default_rng(0).bytes(3000)
    pages, skipped = read(SAMPLE[:start] + garbage + SAMPLE[start:])
    assert pages == PAGES
    assert [(s.offset, s.skipped_bytes, s.detail) for s in resyncs(skipped)] == [
        (start, 3000, "garbage")
    ]


def test_flipped_bytes_inside_one_member_cost_that_member():
    member = sorted(PAGE_OF_MEMBER)[40]
    start, end = SPANS[member]
    damaged = bytearray(SAMPLE)
    for at in range(start + 200, start + 220):
        damaged[at] ^= 0xFF
    pages, skipped = read(bytes(damaged))
    assert pages == pages_without([member])
    assert [(s.offset, s.skipped_bytes) for s in resyncs(skipped)] == [(start, end - start)]


def test_flipped_bytes_spread_over_the_file():
    """Twenty flips anywhere: every member without one is recovered, no page differs."""
    rng = np.random.default_rng(7)
    damaged = bytearray(SAMPLE)
    flipped = sorted(rng.choice(len(SAMPLE), 20, replace=False).tolist())
    for at in flipped:
        damaged[at] ^= 1 << int(rng.integers(8))
    hit = {n for n, (s, e) in enumerate(SPANS) for at in flipped if s <= at < e}
    pages, _ = read(bytes(damaged))
    undamaged = pages_without(hit)
    assert undamaged.items() <= pages.items()  # all of them, and unchanged
    assert all(PAGES[url] == payload for url, payload in pages.items())  # nothing half-read
    assert len(pages) >= len(PAGES) - len(hit)


def test_a_cut_tail_keeps_every_whole_record():
    start, end = SPANS[200]
    pages, skipped = read(SAMPLE[: start + (end - start) // 2])
    assert pages == {u: p for u, p in PAGES.items() if u in pages_without(range(200, len(SPANS)))}
    assert [s.reason for s in skipped[-2:]] == ["truncated_record", "resynced"]
    assert skipped[-2].offset == start


PLAIN = gzip.decompress(SAMPLE)


def plain_records(data: bytes) -> list[tuple[int, int]]:
    """(start of header, Content-Length value's span) of each record of the plain WARC."""
    return [
        (m.start(), m.span(1))
        for m in re.finditer(rb"WARC/1\.0\r\n(?:[^\r]*\r\n)*?Content-Length: (\d+)\r\n", data)
    ]


def test_wrong_content_lengths_in_a_plain_warc_cost_those_records():
    """Five wrong lengths at the start: every other record is read."""
    records = plain_records(PLAIN)
    assert len(records) == 961
    damaged, wrong = PLAIN, [0, 1, 3, 5, 8]
    for number in sorted(wrong, reverse=True):  # from the back, so the spans stay valid
        _start, (a, b) = records[number]
        value = int(damaged[a:b]) + 137 if number % 2 else int(damaged[a:b]) // 2
        damaged = damaged[:a] + str(value).encode() + damaged[b:]
    pages, skipped = read(damaged)
    assert pages == pages_without(wrong)
    assert sum(s.reason == "bad_content_length" for s in skipped) == len(wrong)


def test_garbage_in_a_plain_warc_costs_the_record_before_it():
    """In a plain file a record's end cannot be told from a wrong Content-Length when garbage
    follows it, so that record is dropped too; everything after is read."""
    records = plain_records(PLAIN)
    at = records[51][0]
    pages, skipped = read(PLAIN[:at] + b"\x00garbage\r\n" * 300 + PLAIN[at:])
    assert pages == pages_without([50])
    assert sum(s.reason == "resynced" for s in skipped) == 1


@pytest.mark.parametrize("cut", [0.3, 0.77])
def test_a_cut_plain_warc_keeps_every_whole_record(cut):
    at = int(len(PLAIN) * cut)
    whole = [n for n, (start, _) in enumerate(plain_records(PLAIN)) if start < at]
    pages, skipped = read(PLAIN[:at])
    assert pages == {u: p for u, p in PAGES.items() if u not in pages_without(range(whole[-1]))}
    assert skipped[-2].reason == "truncated_record" and skipped[-1].reason == "resynced"

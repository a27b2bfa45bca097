"""Builds WARC bytes record by record, including the damaged kinds the readers must survive."""

from __future__ import annotations

import gzip
import uuid

OK_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset={charset}\r\n\r\n"


def warc_record(
    uri: str,
    block: bytes,
    rec_type: str = "response",
    content_type: str = "application/http; msgtype=response",
    declared_length: int | None = None,
) -> bytes:
    length = len(block) if declared_length is None else declared_length
    head = (
        f"WARC/1.0\r\nWARC-Type: {rec_type}\r\nWARC-Target-URI: {uri}\r\n"
        f"WARC-Date: 2024-05-18T01:58:10Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, uri)}>\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    return head + block + b"\r\n\r\n"


def html_response(uri: str, html: str, charset: str = "utf-8", head: str | None = None) -> bytes:
    http_head = (head if head is not None else OK_HEAD.format(charset=charset)).encode("latin-1")
    return warc_record(uri, http_head + html.encode(charset, errors="strict"))


def wet_conversion(uri: str, text: str) -> bytes:
    return warc_record(uri, text.encode("utf-8"), "conversion", "text/plain")


def gzip_members(*records: bytes) -> bytes:
    """One gzip member per record, as CommonCrawl writes them."""
    return b"".join(gzip.compress(r) for r in records)


def page(title: str, *paragraphs: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    head = f"<head><title>{title}</title></head>"
    return f"<html>{head}<body><main><h1>{title}</h1>{body}</main></body></html>"


GERMAN = (
    "Die Stadt liegt am Ufer eines großen Sees und ist im Sommer ein beliebtes Ziel.",
    "Viele Besucher kommen wegen der alten Kirche und des Marktes hierher.",
)
ENGLISH = (
    "The town lies on the shore of a large lake and is a popular destination in summer.",
    "Many visitors come here for the old church and the market.",
)
CHINESE = (
    "这个城市位于一个大湖的岸边，夏天是很受欢迎的旅游地。",
    "许多游客来这里是为了看古老的教堂和市场。",
)

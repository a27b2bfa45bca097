"""Streaming WARC/WET reading: one event per record, bad input skipped and counted.

Records are framed by mining/warc_framing.py, which resynchronises after damage (a damaged gzip
member, garbage, a wrong Content-Length, a cut), and HTTP headers are parsed here, record by
record, so a single broken spot costs only the records it touches.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from warcio.bufferedreaders import ChunkedDataReader, DecompressingBufferedReader
from warcio.statusandheaders import StatusAndHeadersParser, StatusAndHeadersParserException

from mining.warc_framing import MAX_HEADER, Damage, frame_records, pieces

DEFAULT_MAX_RECORD_BYTES = 5 * 1024 * 1024
HTML_TYPES = ("text/html", "application/xhtml+xml")
_HTTP_PARSER = StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0"], verify=True)
_DECODABLE = {"gzip", "x-gzip", "deflate", "br"}


@dataclass
class Document:
    """A record whose payload should be turned into sentences."""

    url: str
    record_id: str
    source: str
    offset: int
    rec_type: str
    is_html: bool
    payload: bytes
    charset: str | None


@dataclass
class Skipped:
    """A record, or the rest of a file, that was not used, and why."""

    reason: str
    source: str
    offset: int | None
    detail: str = ""
    rec_type: str | None = None
    skipped_bytes: int = 0  # for `resynced`: raw bytes skipped to the next record

    def describe(self) -> str:
        where = f"{self.source}: offset {self.offset}" if self.offset is not None else self.source
        detail = self.detail
        if self.skipped_bytes:
            detail = f"{self.skipped_bytes} bytes skipped" + (f": {detail}" if detail else "")
        return f"{where}: {self.reason}" + (f" ({detail})" if detail else "")


class BadInputError(Exception):
    """Raised in strict mode; the message is one line naming file, offset and reason."""


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'").lower()
    return None


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _read_limited(stream, limit: int) -> bytes:
    """Read at most limit + 1 bytes, so an over-long record is detected without reading it all."""
    return stream.read(limit + 1)


def _decode_transfer(body: bytes, headers) -> bytes:
    if "chunked" in (headers.get_header("Transfer-Encoding") or "").lower():
        body = ChunkedDataReader(io.BytesIO(body)).read()
    encoding = (headers.get_header("Content-Encoding") or "").strip().lower()
    if encoding in _DECODABLE:
        decomp = "gzip" if encoding == "x-gzip" else encoding
        body = DecompressingBufferedReader(io.BytesIO(body), decomp_type=decomp).read()
    return body


def _record_event(record, source: str, max_bytes: int) -> Document | Skipped:
    """Turn one warcio record into a Document or a Skipped; reads at most max_bytes + 1."""
    rec_type = record.rec_type
    headers = record.rec_headers
    url = (headers.get_header("WARC-Target-URI") or "").strip().strip("<>")
    record_id = (headers.get_header("WARC-Record-ID") or "").strip()

    def skip(reason: str, detail: str = "") -> Skipped:
        return Skipped(reason, source, None, detail, rec_type)

    mime = _mime(headers.get_header("Content-Type"))
    # wget stores its log and arguments as resource records with metadata:// URIs.
    web_resource = rec_type == "resource" and url.startswith(("http://", "https://"))
    if rec_type == "conversion" or (web_resource and mime in ("text/plain", *HTML_TYPES)):
        payload = _read_limited(record.raw_stream, max_bytes)
        if len(payload) > max_bytes:
            return skip("too_large", f"over {max_bytes} bytes")
        is_html = mime in HTML_TYPES
        charset = _charset(headers.get_header("Content-Type")) or (None if is_html else "utf-8")
        return Document(url, record_id, source, -1, rec_type, is_html, payload, charset)

    if rec_type != "response":
        return skip("record_type")

    try:
        http = _HTTP_PARSER.parse(record.raw_stream)
    except (StatusAndHeadersParserException, ValueError, UnicodeDecodeError) as exc:
        return skip("bad_http_headers", str(exc).splitlines()[0][:120])
    status = http.get_statuscode()
    if not status or not status.isdigit():
        return skip("bad_http_headers", f"status line {http.statusline[:60]!r}")
    if status != "200":
        return skip("http_status", status)
    content_type = http.get_header("Content-Type")
    if _mime(content_type) not in HTML_TYPES:
        return skip("not_html", _mime(content_type) or "no content type")
    body = _read_limited(record.raw_stream, max_bytes)
    if len(body) > max_bytes:
        return skip("too_large", f"over {max_bytes} bytes")
    try:
        body = _decode_transfer(body, http)
    except (OSError, ValueError, zlib.error) as exc:
        return skip("bad_content_encoding", str(exc)[:120])
    if len(body) > max_bytes:
        return skip("too_large", f"over {max_bytes} bytes decoded")
    return Document(url, record_id, source, -1, rec_type, True, body, _charset(content_type))


@dataclass
class _Record:
    """What _record_event reads of a record."""

    rec_type: str | None
    rec_headers: object
    raw_stream: io.BytesIO


def iter_records(
    fileobj, source: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[Document | Skipped]:
    """Yield one event per WARC record of `fileobj`, and a `resynced` event (rec_type None) for
    each damaged stretch skipped between records; a file without any record yields one
    `not_warc` (or `empty_file`) event instead."""
    found = 0
    held: Skipped | None = None  # damage before the first record: maybe the file is no WARC
    for item in frame_records(pieces(fileobj), max_record_bytes + MAX_HEADER):
        if isinstance(item, Damage) and item.reason == "resynced":
            event = Skipped("resynced", source, item.offset, item.detail, None, item.skipped)
            if found:
                yield event
            else:
                held = event
            continue
        if held is not None:
            yield held
            held = None
        found += 1
        rec_type = item.headers.get_header("WARC-Type")
        if isinstance(item, Damage):
            yield Skipped(item.reason, source, item.offset, item.detail, rec_type)
            continue
        if item.content is None:
            event = Skipped("too_large", source, None, f"over {max_record_bytes} bytes", rec_type)
        else:
            record = _Record(rec_type, item.headers, io.BytesIO(item.content))
            event = _record_event(record, source, max_record_bytes)
        event.offset = item.offset
        yield event
    if not found:
        if held is not None:
            yield Skipped("not_warc", source, 0, f"no WARC record in {held.skipped_bytes} bytes")
        else:
            yield Skipped("empty_file", source, 0)

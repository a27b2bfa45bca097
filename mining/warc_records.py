"""Streaming WARC/WET reading with warcio: one event per record, bad input skipped and counted.

Records are read with `no_record_parse=True` and HTTP headers are parsed here, record by record,
so a single broken header costs one record instead of the rest of the file.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader, DecompressingBufferedReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeadersParser, StatusAndHeadersParserException

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

    def describe(self) -> str:
        where = f"{self.source}: offset {self.offset}" if self.offset is not None else self.source
        return f"{where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


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


def iter_records(
    fileobj, source: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[Document | Skipped]:
    """Yield one event per WARC record of `fileobj`; file-level problems end with a Skipped.

    A truncated or corrupt file yields what could be read, then one Skipped naming the offset.
    """
    iterator = ArchiveIterator(fileobj, no_record_parse=True)
    count = 0
    try:
        for record in iterator:
            if record.format != "warc":
                yield Skipped("not_warc", source, 0, f"first record parsed as {record.format}")
                return
            count += 1
            event = _record_event(record, source, max_record_bytes)
            if isinstance(event, Document) and getattr(record.raw_stream, "limit", 0) > 0:
                # The stream ended before the record's Content-Length: a cut file.
                event = Skipped("truncated_record", source, None, "", record.rec_type)
            event.offset = iterator.get_record_offset()
            yield event
    except (ArchiveLoadFailed, EOFError, OSError, zlib.error, ValueError) as exc:
        reason = "not_warc" if count == 0 else "corrupt_file"
        offset = getattr(iterator, "offset", None)
        yield Skipped(reason, source, offset, str(exc).splitlines()[0][:160] if str(exc) else "")
        return
    if count == 0:
        yield Skipped("empty_file", source, 0)

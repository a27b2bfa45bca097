"""WARC records framed from raw bytes, resynchronising after damage.

CommonCrawl writes every WARC record as its own gzip member precisely so that a reader can resume
at the next one. Here a damaged spot costs only the records it touches:

- gzip: members are decompressed one at a time and a member's output is released only once its
  CRC checks out, so a damaged member never becomes a page. A member that fails (flipped bytes,
  a cut) and bytes that are no member at all (garbage) are skipped up to the next gzip member
  whose first bytes decompress to a WARC header. A member too large to hold (a whole file in one
  gzip stream) is streamed instead.
- framing (gzip or plain): a record is its header block, `Content-Length` bytes of content, CRLF
  CRLF, and then the next record's header or the end. A record whose content does not end
  where its length says, or that is cut by damage or the end of the file, is dropped; reading
  resumes at the next line that starts a parsable `WARC/1.0` or `WARC/1.1` header.

Every resynchronisation is reported with the raw bytes it skipped.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from warcio.statusandheaders import StatusAndHeadersParser, StatusAndHeadersParserException

GZIP_MAGIC = b"\x1f\x8b\x08"
# CRLF as the specification says, and bare LF as some writers do (warcio accepts both).
WARC_STARTS = (b"WARC/1.0\r\n", b"WARC/1.1\r\n", b"WARC/1.0\n", b"WARC/1.1\n")
PREFIX = len(WARC_STARTS[0])
BLANK_LINES = (b"\r\n\r\n", b"\n\n")
READ_BLOCK = 1 << 20
MAX_HEADER = 64 * 1024  # a WARC header block longer than this is damage
HELD_MEMBER = 64 << 20  # larger members are streamed, not held until their CRC
_WARC_PARSER = StatusAndHeadersParser(["WARC/1.0", "WARC/1.1"], verify=False)


@dataclass
class Piece:
    """Decompressed (or plain) bytes and the raw offset they came from: exact for plain files,
    the member's start for gzip; `member_start` marks the first bytes of a gzip member."""

    data: bytes
    offset: int
    exact: bool
    member_start: bool = False


@dataclass
class Gap:
    """Raw bytes skipped: damaged members, garbage, or a cut at the end."""

    offset: int
    skipped: int
    reason: str


@dataclass
class FramedRecord:
    offset: int
    headers: object  # warcio StatusAndHeaders
    content: bytes | None  # None: longer than the caller's limit, not kept
    length: int


@dataclass
class Damage:
    """A record (header parsed) that could not be read whole, or bytes skipped to resync."""

    reason: str  # resynced, truncated_record, bad_content_length
    offset: int
    skipped: int = 0
    headers: object = None
    detail: str = ""


def plain_pieces(stream, first: bytes) -> Iterator[Piece]:
    offset = 0
    block = first
    while block:
        yield Piece(block, offset, True)
        offset += len(block)
        block = stream.read(READ_BLOCK)


def _starts_warc(compressed: bytes) -> bool:
    try:
        head = zlib.decompressobj(31).decompress(compressed, PREFIX)
    except zlib.error:
        return False
    return head.startswith(WARC_STARTS)


def _at_start(view: bytes) -> bool:
    return view.startswith(WARC_STARTS)


class _RawBuffer:
    """The compressed stream read in blocks; `data[pos:]` is what is left, at file offset
    `base`. Consumed bytes are dropped only now and then (no copy per member)."""

    def __init__(self, stream, first: bytes):
        self.stream, self.data, self.pos, self.base = stream, bytearray(first), 0, 0
        self.eof = not first

    def __len__(self) -> int:
        return len(self.data) - self.pos

    def fill(self, size: int) -> bool:
        while len(self) < size and not self.eof:
            block = self.stream.read(READ_BLOCK)
            if block:
                if self.pos > READ_BLOCK:
                    del self.data[: self.pos]
                    self.pos = 0
                self.data.extend(block)
            else:
                self.eof = True
        return len(self) >= size

    def startswith(self, prefix: bytes) -> bool:
        return self.data.startswith(prefix, self.pos)

    def block(self, at: int, size: int) -> bytes:
        return bytes(self.data[self.pos + at : self.pos + at + size])

    def drop(self, size: int) -> None:
        self.pos += size
        self.base += size

    def next_member(self, start: int) -> int | None:
        """Position (>= start, from what is left) of the next gzip member whose output starts a
        WARC record."""
        while True:
            found = self.data.find(GZIP_MAGIC, self.pos + start)
            if found < 0:
                if self.eof:
                    return None
                start = max(len(self) - len(GZIP_MAGIC) + 1, start)
                self.fill(len(self) + READ_BLOCK)
                continue
            found -= self.pos
            self.fill(found + 4096)
            if _starts_warc(self.block(found, 4096)):
                return found
            start = found + 1


INFLATE_BLOCK = 64 * 1024


def gzip_pieces(stream, first: bytes) -> Iterator[Piece | Gap]:
    raw = _RawBuffer(stream, first)
    while raw.fill(1):
        raw.fill(len(GZIP_MAGIC))
        if not raw.startswith(GZIP_MAGIC):  # garbage where a member should start
            found = raw.next_member(1)
            skipped = len(raw) if found is None else found
            yield Gap(raw.base, skipped, "garbage")
            raw.drop(skipped)
            continue
        start, held, held_size, streamed = raw.base, [], 0, False
        inflate = zlib.decompressobj(31)
        used = 0
        try:
            while not inflate.eof:
                if used >= len(raw) and not raw.fill(used + 1):
                    raise EOFError("cut inside a gzip member")
                block = raw.block(used, INFLATE_BLOCK)
                out = inflate.decompress(block)
                used += len(block) - len(inflate.unused_data)
                if streamed:
                    yield Piece(out, start, False)
                    continue
                held.append(out)
                held_size += len(out)
                if held_size > HELD_MEMBER:  # a whole file in one member: stream it
                    streamed = True
                    yield Piece(b"".join(held), start, False, True)
                    held = []
                    raw.drop(used)
                    start, used = raw.base, 0
        except EOFError:  # cut at the end: the framing judges what was decompressed
            if held:
                yield Piece(b"".join(held), start, False, True)
            yield Gap(start, 0, "cut_member")
            raw.drop(len(raw))
            continue
        except zlib.error:  # damaged: nothing of it is trusted
            found = raw.next_member(1)
            skipped = len(raw) if found is None else found
            yield Gap(start, skipped, "damaged_member")
            raw.drop(skipped)
            continue
        if held:
            yield Piece(b"".join(held), start, False, True)
        raw.drop(used)


def pieces(stream) -> Iterator[Piece | Gap]:
    """The decompressed bytes of a WARC file (gzipped or not), with gaps where damage was."""
    first = stream.read(READ_BLOCK)
    if first[:2] == GZIP_MAGIC[:2]:
        return gzip_pieces(stream, first)
    return plain_pieces(stream, first)


class _Tape:
    """Decompressed bytes in order, with their raw offsets; a gap is a hard boundary that
    `fill` does not cross until `cross_gap`."""

    def __init__(self, items: Iterator[Piece | Gap]):
        self.items = items
        self.buf = bytearray()
        self.start = 0  # consumed bytes at the front of buf
        self.origins: list[tuple[int, Piece]] = []  # (index in buf, piece), in order
        self.gap: Gap | None = None
        self.eof = False

    def __len__(self) -> int:
        return len(self.buf) - self.start

    def fill(self, size: int) -> bool:
        while len(self) < size and self.gap is None and not self.eof:
            item = next(self.items, None)
            if item is None:
                self.eof = True
            elif isinstance(item, Gap):
                self.gap = item
            elif item.data:
                self.origins.append((len(self.buf), item))
                self.buf.extend(item.data)
        return len(self) >= size

    @property
    def stopped(self) -> bool:
        """Nothing more before a gap or the end of the file."""
        return self.gap is not None or self.eof

    def view(self, begin: int, end: int) -> bytes:
        return bytes(self.buf[self.start + begin : self.start + end])

    def find(self, needle: bytes, begin: int = 0, end: int | None = None) -> int:
        stop = len(self.buf) if end is None else min(len(self.buf), self.start + end)
        found = self.buf.find(needle, self.start + begin, stop)
        return -1 if found < 0 else found - self.start

    def offset(self, at: int = 0) -> int:
        """Raw offset of byte `at` of what is left (the member's start for gzip)."""
        index = self.start + at
        for origin, piece in reversed(self.origins):
            if origin <= index:
                return piece.offset + (index - origin if piece.exact else 0)
        return self.gap.offset if self.gap else 0

    def member_starts_at(self, at: int) -> bool:
        index = self.start + at
        return any(o == index and p.member_start for o, p in self.origins)

    def consume(self, size: int) -> None:
        self.start += size
        if self.start > READ_BLOCK and self.start * 2 > len(self.buf):
            self.origins = [
                (o - self.start, p) for o, p in self.origins if o + len(p.data) > self.start
            ]
            del self.buf[: self.start]
            self.start = 0

    def cross_gap(self) -> Gap:
        """Drop what is left before the gap and continue after it."""
        gap, self.gap = self.gap, None
        self.buf, self.start, self.origins = bytearray(), 0, []
        return gap


class _Skipped:
    """Bytes skipped since the last record, and where that began."""

    def __init__(self):
        self.bytes, self.offset, self.reasons = 0, None, set()

    def add(self, offset: int, size: int, reason: str | None = None) -> None:
        if size <= 0:
            return
        if self.offset is None:
            self.offset = offset
        self.bytes += size
        if reason:
            self.reasons.add(reason)


def _align(tape: _Tape, skipped: _Skipped) -> bool:
    """Move to the next line that starts a WARC header; False at the end of the file."""
    while True:
        tape.fill(PREFIX)
        if _at_start(tape.view(0, PREFIX)):
            return True
        if len(tape) < PREFIX and tape.gap is not None:
            skipped.add(tape.offset(), len(tape))
            gap = tape.cross_gap()
            skipped.add(gap.offset, gap.skipped, gap.reason)
            continue
        if len(tape) < PREFIX and tape.eof:
            skipped.add(tape.offset(), len(tape))
            tape.consume(len(tape))
            return False
        line = tape.find(b"\nWARC/1.")
        step = line + 1 if line >= 0 else max(len(tape) - PREFIX + 1, 1)
        skipped.add(tape.offset(), step)
        tape.consume(step)


def _content_length(headers) -> int | None:
    value = headers.get_header("Content-Length")
    try:
        length = int((value or "").strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _header(tape: _Tape):
    """The header block at the tape's start: (headers, its size), or (None, 0)."""
    end, blank = _blank_line(tape)
    while end < 0 and len(tape) < MAX_HEADER and tape.fill(len(tape) + 4096):
        end, blank = _blank_line(tape)
    if end < 0:
        return None, 0
    try:
        headers = _WARC_PARSER.parse(io.BytesIO(tape.view(0, end + blank)))
    except (StatusAndHeadersParserException, ValueError, UnicodeDecodeError):
        return None, 0
    return (headers, end + blank) if _content_length(headers) is not None else (None, 0)


def _blank_line(tape: _Tape) -> tuple[int, int]:
    """The blank line ending the header, in the line ending its first line uses: (position,
    its length) or (-1, 0)."""
    blank = BLANK_LINES[0] if tape.view(0, PREFIX).endswith(b"\r\n") else BLANK_LINES[1]
    at = tape.find(blank, 0, MAX_HEADER)
    return (at, len(blank)) if at >= 0 else (-1, 0)


def _damaged(tape, skipped, reason, offset, headers, detail=""):
    """A record that cannot be read whole: reported, and reading resumes after its first byte
    (the next header may lie inside what its length claimed)."""
    if len(tape):
        skipped.add(tape.offset(), 1)
        tape.consume(1)
    return Damage(reason, offset, headers=headers, detail=detail)


def _read_record(tape: _Tape, keep_limit: int, skipped: _Skipped):
    """The record at the tape's start: a FramedRecord, a Damage, or None where no header
    parses after all (one byte is then skipped)."""
    headers, body = _header(tape)
    if headers is None:
        skipped.add(tape.offset(), 1)
        tape.consume(1)
        return None
    offset, length = tape.offset(), _content_length(headers)
    kept = length <= keep_limit
    if not kept:  # too long to keep: stream over the content
        tape.consume(body)
        remaining = length
        while remaining and (len(tape) or tape.fill(1)):
            step = min(remaining, len(tape))
            tape.consume(step)
            remaining -= step
        if remaining:
            return _damaged(tape, skipped, "truncated_record", offset, headers)
        body = length = 0
    end = body + length  # where the trailer should be
    tape.fill(end + 4 + PREFIX)
    trailer = next((b for b in BLANK_LINES if tape.view(end, end + len(b)) == b), None)
    if trailer is None and len(tape) < end + 4:
        return _damaged(tape, skipped, "truncated_record", offset, headers)
    after = end + len(trailer or b"")
    next_starts = (
        _at_start(tape.view(after, after + PREFIX))
        or tape.member_starts_at(after)
        or (len(tape) == after and tape.stopped)
    )
    if trailer is None or not next_starts:
        return _damaged(tape, skipped, "bad_content_length", offset, headers, f"{length} bytes")
    content = tape.view(body, end) if kept else None
    tape.consume(after)
    return FramedRecord(offset, headers, content, length if kept else -1)


def frame_records(items: Iterator[Piece | Gap], keep_limit: int) -> Iterator[FramedRecord | Damage]:
    """The WARC records of a file's bytes, and the damage between them (content over
    keep_limit is skipped, not kept: its record has content None)."""
    tape = _Tape(items)
    skipped = _Skipped()
    while True:
        aligned = _align(tape, skipped)
        if skipped.bytes:
            detail = "+".join(sorted(skipped.reasons))
            yield Damage("resynced", skipped.offset, skipped.bytes, detail=detail)
            skipped = _Skipped()
        if not aligned:
            return
        record = _read_record(tape, keep_limit, skipped)
        if record is not None:
            yield record

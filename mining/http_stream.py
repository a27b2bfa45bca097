"""Files read over HTTP(S) as a stream that survives what CommonCrawl's servers do under load.

data.commoncrawl.org answers many requests with 503 (Slow Down) when busy, and its guidance is to
retry with exponential backoff; a long download (a WARC file is about 1 GB) can also break off
halfway. Read with one plain request, a 503 failed the stage and a broken download lost the
rest of its file (read as damage). Here a
refused request is retried with backoff (honouring Retry-After), and a download that breaks
(connection reset, read timeout, a body shorter than its Content-Length) is resumed where it
stopped with a Range request, so the reader sees every byte once, in order. Both are counted.
urllib3 makes the requests: its Retry does the backoff and its responses check the length.
"""

from __future__ import annotations

import io
import time

import urllib3
from urllib3.exceptions import ProtocolError
from urllib3.util import Retry

TIMEOUT_S = 120  # to connect, and between two reads of the body
ATTEMPTS = 10  # per request, and resumptions in a row that bring no byte
# Retries of a connection that cannot be made: a wrong host name should fail in seconds.
CONNECT_ATTEMPTS = 2
BACKOFF_S = 1.0  # the first wait; doubled each time, at most BACKOFF_MAX_S
BACKOFF_MAX_S = 60.0
RETRY_STATUSES = (429, 500, 502, 503, 504)
BUFFER_BYTES = 1 << 20


class DownloadError(OSError):
    """A file that could not be downloaded: still refused, or still breaking off, after every
    attempt."""


# Connections kept per host: one for each thread that may download at once (a Beam worker
# process runs several; by default urllib3 keeps 1 and logs a warning for each one it drops).
_pool = urllib3.PoolManager(maxsize=32, timeout=urllib3.Timeout(connect=TIMEOUT_S, read=TIMEOUT_S))


def open_url(url: str) -> io.BufferedReader:
    """A buffered binary stream of the bytes at `url` (not decoded: a .gz stays gzip). Its
    `.raw` is the HttpStream, which holds the counts."""
    return io.BufferedReader(HttpStream(url), BUFFER_BYTES)


class HttpStream(io.RawIOBase):
    """The body of a GET, requested again from where it broke off, as often as ATTEMPTS allows
    in a row without progress. `retries`: requests answered with a retryable status or not
    answered, then retried; `resumes`: downloads resumed after a break. An error that remains
    is a DownloadError naming the URL (FileNotFoundError for 404 and 410)."""

    def __init__(self, url: str):
        self.url = url
        self.position = 0  # bytes delivered
        self.retries = 0
        self.resumes = 0
        self._response = self._request()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        breaks = 0
        while True:
            try:
                n = self._response.readinto(buffer)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                breaks += 1
                if breaks > ATTEMPTS:
                    # a ProtocolError's first argument says it ("Connection broken: ...")
                    why = error.args[0] if isinstance(error, ProtocolError) else error
                    raise DownloadError(
                        f"{self.url}: the download broke off at byte {self.position:,} "
                        f"{breaks} times in a row: {why}"
                    ) from error
                self.resumes += 1
                self._response.release_conn()
                if breaks > 1:  # the first break after progress is resumed at once
                    time.sleep(min(BACKOFF_S * 2 ** (breaks - 2), BACKOFF_MAX_S))
                self._response = self._request()
                continue
            self.position += n
            return n

    def close(self) -> None:
        if not self.closed:
            self._response.release_conn()
        super().close()

    def _request(self):
        headers = {"Range": f"bytes={self.position}-"} if self.position else {}
        retry = Retry(
            total=ATTEMPTS,
            connect=CONNECT_ATTEMPTS,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=BACKOFF_S,
            backoff_max=BACKOFF_MAX_S,
            backoff_jitter=BACKOFF_S / 2,
            raise_on_status=False,  # the last answer's status is reported below
        )
        try:
            response = _pool.request(
                "GET",
                self.url,
                headers=headers,
                retries=retry,
                preload_content=False,
                decode_content=False,
            )
        except urllib3.exceptions.MaxRetryError as error:
            raise DownloadError(f"{self.url}: {error.reason}") from error
        except urllib3.exceptions.HTTPError as error:
            raise DownloadError(f"{self.url}: {error}") from error
        history = response.retries.history if response.retries else ()
        retried = sum(1 for step in history if step.redirect_location is None)  # not redirects
        self.retries += retried
        if response.status in (404, 410):
            response.release_conn()
            raise FileNotFoundError(f"{self.url}: not found (HTTP {response.status})")
        if response.status >= 300:
            response.release_conn()
            raise DownloadError(
                f"{self.url}: HTTP {response.status} {response.reason} (after {retried} retries)"
            )
        if self.position:
            self._check_resumed(response)
        return response

    def _check_resumed(self, response) -> None:
        """A resumed download must start where the last one stopped: a server that ignores
        Range sends the whole file (200), whose first bytes are skipped."""
        if response.status == 200:
            left = self.position
            while left:
                chunk = response.read(min(left, BUFFER_BYTES))
                if not chunk:
                    raise DownloadError(
                        f"{self.url}: shorter than the {self.position:,} bytes read"
                    )
                left -= len(chunk)
            return
        start = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
        if start != str(self.position):
            response.release_conn()
            raise DownloadError(
                f"{self.url}: asked to resume at byte {self.position:,}, the server sent "
                f"Content-Range {response.headers.get('Content-Range')!r}"
            )

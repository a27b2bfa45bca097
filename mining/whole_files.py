"""Whole files read and written in one call, on any Beam file system, in one request on gs://.

The mine stage writes and reads thousands of small files (blocks passed between workers,
records of shards and work units). Through Beam's GCS file system a file written and read takes
5 requests: a resumable upload (2), then a read makes a new storage client, which asks for the
bucket, and asks for the object's metadata before its bytes. A storage client kept by each
thread takes 2: one upload (multipart up to 8 MB, resumable above) and one download.
"""

from __future__ import annotations

import os
import threading

from apache_beam.io.filesystems import FileSystems

_clients = threading.local()  # one storage client per thread, reused by its calls


def read_bytes(path: str) -> bytes:
    if not path.startswith("gs://"):
        with FileSystems.open(path) as stream:
            return stream.read()
    from google.api_core.exceptions import NotFound

    try:
        return _blob(path).download_as_bytes()
    except NotFound as error:
        raise FileNotFoundError(f"{path}: not found") from error


def write_bytes(path: str, data: bytes) -> None:
    """Write (or replace) the file at `path`. Uploads on gs:// are retried on transient errors:
    a file's bytes are the same however often it is written."""
    if not path.startswith("gs://"):
        with FileSystems.create(path) as out:
            out.write(data)
        return
    from google.cloud.storage.retry import DEFAULT_RETRY

    _blob(path).upload_from_string(data, "application/octet-stream", retry=DEFAULT_RETRY)


def _blob(path: str):
    bucket, name = path.removeprefix("gs://").split("/", 1)
    return _client().bucket(bucket).blob(name)


def _client():
    # A client keeps the endpoint it was made for: a new one if STORAGE_EMULATOR_HOST changed.
    endpoint = os.environ.get("STORAGE_EMULATOR_HOST")
    if getattr(_clients, "endpoint", None) != endpoint or not hasattr(_clients, "client"):
        from apache_beam.io.gcp import gcsio  # 0.3 s to import, only for gs://

        _clients.client = gcsio.GcsIO().client  # with the credentials Beam finds
        _clients.endpoint = endpoint
    return _clients.client

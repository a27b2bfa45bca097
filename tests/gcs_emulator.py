"""A Google Cloud Storage emulator on loopback, so that tests use gs:// paths as on Dataflow.

gcp-storage-emulator (PyPI) serves the GCS JSON API from memory. Beam's GCS file system and the
google-cloud-storage client it uses talk to it unchanged, through STORAGE_EMULATOR_HOST; the only
thing a test replaces is the credential lookup, since there are no Google credentials offline
(Beam would retry for about 25 s, then connect anonymously, which the emulator accepts).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import free_port

BUCKET = "ccmine-test"


@contextmanager
def gcs_bucket(monkeypatch) -> Iterator[str]:
    """Serve an empty bucket for one test; yields its gs:// root."""
    from apache_beam.internal.gcp import auth
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("localhost", port, in_memory=True, default_bucket=BUCKET)
    log = logging.getLogger("gcp_storage_emulator")
    level = log.level
    log.setLevel(logging.ERROR)  # it warns on every upload it serves
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://localhost:{port}")
    monkeypatch.setattr(auth, "get_service_credentials", lambda options: None)
    try:
        yield f"gs://{BUCKET}"
    finally:
        server.stop()
        log.setLevel(level)


def _blob(path: str):
    from google.cloud import storage

    bucket, name = path.removeprefix("gs://").split("/", 1)
    return storage.Client.create_anonymous_client().bucket(bucket).get_blob(name)


def download(path: str) -> bytes:
    """An object's bytes as stored, through the storage client itself (not Beam)."""
    return _blob(path).download_as_bytes()


def generation(path: str) -> int:
    """An object's generation: it changes whenever the object is written."""
    return _blob(path).generation


@contextmanager
def served() -> Iterator[dict]:
    """Counts what the emulator answers while open: {"requests": n, "bytes": body bytes}."""
    from gcp_storage_emulator import server

    counts = {"requests": 0, "bytes": 0}
    close = server.Response.close

    def counted(response):
        body = response._content
        counts["requests"] += 1
        counts["bytes"] += len(body.encode() if isinstance(body, str) else body)
        close(response)

    server.Response.close = counted
    try:
        yield counts
    finally:
        server.Response.close = close

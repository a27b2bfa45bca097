"""A Google Cloud Storage emulator on loopback, so that tests use gs:// paths as on Dataflow.

gcp-storage-emulator (PyPI) serves the GCS JSON API from memory. Beam's GCS file system and the
google-cloud-storage client it uses talk to it unchanged, through STORAGE_EMULATOR_HOST; the only
thing a test replaces is the credential lookup, since there are no Google credentials offline
(Beam would retry for about 25 s, then connect anonymously, which the emulator accepts).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import free_port

BUCKET = "ccmine-test"


@contextmanager
def gcs_bucket(monkeypatch) -> Iterator[str]:
    """Serve an empty bucket for one test; yields its gs:// root."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("localhost", port, in_memory=True, default_bucket=BUCKET)
    log = logging.getLogger("gcp_storage_emulator")
    level = log.level
    log.setLevel(logging.ERROR)  # it warns on every upload it serves
    server.start()
    _talk_to(port, monkeypatch)
    try:
        yield f"gs://{BUCKET}"
    finally:
        server.stop()
        log.setLevel(level)


@contextmanager
def distant_gcs_bucket(monkeypatch, latency: float) -> Iterator[tuple[str, Any]]:
    """A bucket served by another process that answers every request `latency` seconds late,
    each on a thread of its own: a model of Cloud Storage's round trips, which it serves many of
    at once, that takes none of this process's time. Yields its gs:// root and a shared count of
    the requests answered (`.value`)."""
    context = multiprocessing.get_context("spawn")
    port, requests, ready = free_port(), context.Value("q", 0), context.Event()
    process = context.Process(target=_serve, args=(port, latency, requests, ready), daemon=True)
    process.start()
    if not ready.wait(60):
        raise RuntimeError("the storage emulator did not start")
    _talk_to(port, monkeypatch)
    try:
        yield f"gs://{BUCKET}", requests
    finally:
        process.terminate()
        process.join()


def _serve(port: int, latency: float, requests, ready) -> None:
    from http import server as http_server

    from gcp_storage_emulator import server

    http_server.HTTPServer = http_server.ThreadingHTTPServer
    handle, close = server.Router.handle, server.Response.close

    def delayed(router, method):
        time.sleep(latency)
        handle(router, method)

    def counted(response):
        with requests.get_lock():
            requests.value += 1
        close(response)

    server.Router.handle, server.Response.close = delayed, counted
    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    server.create_server("localhost", port, in_memory=True, default_bucket=BUCKET).start()
    ready.set()
    threading.Event().wait()


def _talk_to(port: int, monkeypatch) -> None:
    """Points Beam's GCS file system at the emulator on `port`, without credentials."""
    from apache_beam.internal.gcp import auth

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://localhost:{port}")
    monkeypatch.setattr(auth, "get_service_credentials", lambda options: None)


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

"""Whole files read and written in one call, on any Beam file system, in one request on gs://,
and many deleted at once.

The mine stage writes and reads thousands of small files (blocks passed between workers,
records of shards and work units). Through Beam's GCS file system a file written and read takes
5 requests: a resumable upload (2), then a read makes a new storage client, which asks for the
bucket, and asks for the object's metadata before its bytes. A storage client kept by each
thread takes 2: one upload (multipart up to 8 MB, resumable above) and one download. Files that
are read and written whole anyway (embedding and index shards) go the same way.

Beam's delete of a list of gs:// paths makes three new clients for each path (each asks for
the bucket), asks twice for its metadata, then deletes it in a batch of one: 6 requests a file,
one after another (at 20 ms a request, 14 days for 10 million work files). Here a batch request
deletes 100 and THREADS batches are in flight (at 20 ms a request, about 2 minutes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from apache_beam.io.filesystems import FileSystems

THREADS = 16  # delete batches in flight at once
BATCH = 100  # deletions in one batch request, Cloud Storage's limit

PARTIAL = ".partial-"  # a local file being written is PATH.partial-PID-THREAD until renamed
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
    """Write (or replace) the file at `path`, all or nothing: a local file is written beside it
    and renamed, so a run killed mid-write leaves the old file or none, never a truncated one
    (as an upload to an object store is). Uploads on gs:// are retried on transient errors: a
    file's bytes are the same however often it is written."""
    if "://" not in path:
        _write_local(path, data)
        return
    if not path.startswith("gs://"):
        with FileSystems.create(path) as out:
            out.write(data)
        return
    from google.cloud.storage.retry import DEFAULT_RETRY

    _blob(path).upload_from_string(data, "application/octet-stream", retry=DEFAULT_RETRY)


def _write_local(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}{PARTIAL}{os.getpid()}-{threading.get_ident()}"
    try:
        with open(partial, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def remove_partials(directory: str) -> None:
    """Remove the partly written files that killed writers left under a local directory."""
    for root, _, names in os.walk(directory):
        for name in names:
            if PARTIAL in name:
                os.remove(os.path.join(root, name))


def delete_files(paths: Sequence[str]) -> None:
    """Delete the files; one already gone is not an error, any other failure is (OSError
    naming the files and their HTTP status)."""
    remote = [path for path in paths if path.startswith("gs://")]
    others = [path for path in paths if not path.startswith("gs://")]
    if others:
        FileSystems.delete(others)
    batches = [remote[start : start + BATCH] for start in range(0, len(remote), BATCH)]
    with ThreadPoolExecutor(min(THREADS, len(batches) or 1)) as pool:
        failed = [failure for failures in pool.map(_delete_batch, batches) for failure in failures]
    if failed:
        listed = ", ".join(f"{path} (HTTP {status})" for path, status in failed[:5])
        raise OSError(f"could not delete {len(failed)} files: {listed}")


def _delete_batch(paths: list[str]) -> list[tuple[str, int]]:
    # Beam's delete_batch retries transient failures and counts a missing object as deleted.
    return [(path, status) for path, status in _gcsio().delete_batch(paths) if status]


def _blob(path: str):
    bucket, name = path.removeprefix("gs://").split("/", 1)
    return _gcsio().client.bucket(bucket).blob(name)


def _gcsio():
    """This thread's Beam GcsIO, made with the options Beam's file systems get (on a worker,
    the job's: credentials, impersonation, retries), found as FileSystems.get_filesystem finds
    them. A client keeps the endpoint it was made for: a new one if STORAGE_EMULATOR_HOST
    changed."""
    endpoint = os.environ.get("STORAGE_EMULATOR_HOST")
    if getattr(_clients, "endpoint", None) != endpoint or not hasattr(_clients, "gcsio"):
        from apache_beam.io.gcp import gcsio  # 0.3 s to import, only for gs://
        from apache_beam.options.value_provider import RuntimeValueProvider

        options = getattr(FileSystems, "_pipeline_options", None)
        _clients.gcsio = gcsio.GcsIO(
            pipeline_options=options or RuntimeValueProvider.runtime_options
        )
        _clients.endpoint = endpoint
    return _clients.gcsio

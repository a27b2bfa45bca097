"""Input resolution: local globs, Beam file systems (gs://, s3://), https URLs and CC manifests."""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
from collections.abc import Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from mining.http_stream import HttpStream, open_url
from mining.warc_records import BadInputError

CC_BASE_URL = "https://data.commoncrawl.org/"
# What a directory given as input is searched for: CommonCrawl's *.warc.gz and *.warc.wet.gz
# among them, not its *.warc.wat.gz metadata files.
WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz")
WARC_NAMES = "*.warc, *.warc.gz, *.wet or *.wet.gz"

log = logging.getLogger("ccmine")


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def is_manifest(path: str) -> bool:
    return path.endswith((".paths.gz", ".paths"))


def open_input(path: str):
    """A binary stream of the raw bytes (still gzipped: warcio reads gzip members itself); over
    HTTP, retried and resumed (mining/http_stream.py)."""
    if is_url(path):
        return open_url(path)
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def download_counts(stream) -> dict[str, int]:
    """What reading an input took beyond one request: retried requests and resumed downloads
    (none for a file system's stream)."""
    raw = getattr(stream, "raw", None)
    if not isinstance(raw, HttpStream):
        return {}
    return {"http_retries": raw.retries, "http_resumes": raw.resumes}


def crawl_manifest(crawl: str, fmt: str = "wet", base_url: str = CC_BASE_URL) -> str:
    """The official manifest of a crawl, e.g. CC-MAIN-2024-22 -> .../wet.paths.gz."""
    return f"{base_url.rstrip('/')}/crawl-data/{crawl}/{fmt}.paths.gz"


def read_manifest(path: str, base_url: str = CC_BASE_URL) -> list[str]:
    """Paths listed in a warc.paths.gz / wet.paths.gz manifest, made absolute against base_url.
    A manifest that cannot be fetched or decoded is a BadInputError naming it (a missing local
    one stays a FileNotFoundError)."""
    try:
        with open_input(path) as stream:
            data = stream.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # URLError and BadGzipFile among them
        raise BadInputError(f"{path}: manifest not readable: {exc}") from exc
    lines = [line.strip() for line in io.StringIO(text) if line.strip()]
    return [line if "://" in line else f"{base_url.rstrip('/')}/{line}" for line in lines]


def resolve_inputs(
    patterns: list[str],
    crawls: Sequence[str] = (),
    crawl_format: str = "wet",
    max_files: int | None = None,
    base_url: str = CC_BASE_URL,
) -> list[str]:
    """Expand patterns, directories, manifests and crawl names into a list of WARC/WET paths or
    URLs, each once, in the order given; with `max_files`, the first ones (a source cut off
    entirely is named in a warning)."""
    sources = [*patterns, *(crawl_manifest(crawl, crawl_format, base_url) for crawl in crawls)]
    found = [_source_files(source, base_url) for source in sources]
    paths = [path for files in found for path in files]
    unique = list(dict.fromkeys(paths))
    if len(unique) < len(paths):
        log.warning("%d inputs named more than once are read once", len(paths) - len(unique))
    if max_files is not None:
        unique = unique[:max_files]
        kept = set(unique)
        for source, files in zip(sources, found, strict=True):
            if files and not kept.intersection(files):
                log.warning("--max-files %d: no file of %s is read", max_files, source)
    if not unique:
        raise FileNotFoundError("no input files given")
    return unique


def _source_files(source: str, base_url: str) -> list[str]:
    """The WARC/WET paths or URLs one --input (or a crawl's manifest) names."""
    if is_manifest(source):
        return read_manifest(source, base_url)
    if is_url(source):
        return [source]
    if _is_directory(source):
        return _directory_files(source)
    if has_glob(source) and FileSystems.exists(source):  # a name such as "crawl[1].warc"
        return [source]
    matched = matching_paths(source)
    if not matched and not has_glob(source):  # a bucket "directory" without its slash
        matched = _directory_files(source, missing=f"no input matches {source}")
    if not matched:
        raise FileNotFoundError(f"no input matches {source}")
    return matched


def matching_paths(pattern: str) -> list[str]:
    """The paths a pattern matches on any of Beam's file systems, sorted."""
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def has_glob(source: str) -> bool:
    return any(c in source for c in "*?[")


def _is_directory(source: str) -> bool:
    return source.endswith("/") or ("://" not in source and os.path.isdir(source))


def _directory_files(directory: str, missing: str | None = None) -> list[str]:
    """The WARC and WET files anywhere under a directory (or bucket prefix), sorted; the other
    files there are named in the log, and a directory without any is an error (`missing`, if
    given, as its message)."""
    prefix = directory.rstrip("/")
    # Beam's patterns cannot quote a glob character: any character stands for one here.
    wide = re.sub(r"[*?\[]", "?", prefix) + "/**"
    found = [path for path in matching_paths(wide) if path.startswith(prefix + "/")]
    files = [path for path in found if path.endswith(WARC_SUFFIXES)]
    others = [path for path in found if not path.endswith(WARC_SUFFIXES)]
    if others:
        files_word = "file" if len(others) == 1 else "files"
        log.warning(
            "%s: %d %s not named %s skipped, such as %s",
            directory,
            len(others),
            files_word,
            WARC_NAMES,
            others[0],
        )
    if not files:
        raise FileNotFoundError(missing or f"no WARC or WET files ({WARC_NAMES}) under {directory}")
    return files

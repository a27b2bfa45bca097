"""What the workers of shared mine steps know of each pair.

One set of steps mines every pair of a job: each element's key starts with its pair's name, and a
step looks the pair up by it for its languages' shard layouts, its work directory and the
namespace its counters go to. The steps get these by reference: the driver writes the job's
pairs and index metadata to a file (`write_job`) and the steps carry its path, reading it once
per worker process (`read_job`). Carried in the steps, the layouts alone made a job's graph grow
with the shards and the pairs: one pair of 10,000 embedding shards per language put 3.1 MB of
pickled layouts into the search and selection job's graph (Dataflow takes up to 10 MB).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from mining.embedding_store import ShardLayout
from pipelines.work_files import get, put


@dataclass(frozen=True)
class PairContext:
    name: str  # SRC-TGT
    src: str
    tgt: str
    layouts: dict[str, ShardLayout]  # both languages'
    out: str  # where its Parquet parts go
    namespace: str  # its counters', apart from the other pairs' in the same job
    cuts: tuple = (None, None, None)  # its assembly's (threshold, max score, min cosine)

    @property
    def work(self) -> str:
        """Its work directory: its blocks never meet another pair's."""
        return FileSystems.join(self.out, "_work")

    def other(self, lang: str) -> str:
        """The pair's other language."""
        return self.tgt if lang == self.src else self.src

    @property
    def selected(self) -> str:
        """Where the selected pairs' blocks go."""
        return FileSystems.join(self.work, "selected")

    def undecided(self, rounds: int) -> str:
        """Where max mode leaves the edges still undecided after `rounds` rounds."""
        return FileSystems.join(self.work, f"undecided-{rounds:03d}")


@dataclass(frozen=True)
class MineJob:
    """What the steps of one shared mine job look up."""

    pairs: dict[str, PairContext]  # by name
    index_dir: str = ""
    metas: dict[str, dict] = field(default_factory=dict)  # each language's index metadata


def write_job(directory: str, name: str, pairs: list[PairContext], **inputs) -> str:
    """Saves a job's pairs (and `index_dir`, `metas`) as DIRECTORY/NAME.pkl; returns its path."""
    return put(directory, name, MineJob({pair.name: pair for pair in pairs}, **inputs))


@functools.lru_cache(maxsize=2)
def read_job(path: str) -> MineJob:
    """A job's inputs, read once per process (each job writes a file of its own; a process
    keeps the last two, since it runs one job at a time and a job's file can be tens of MB)."""
    return get(path)


def job_pairs(path: str) -> dict[str, PairContext]:
    return read_job(path).pairs

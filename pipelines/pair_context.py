"""What the workers of shared mine steps know of each pair.

One set of steps mines every pair of a job: each element's key starts with its pair's name, and a
step looks the pair up by it for its languages' shard layouts, its work directory and the
namespace its counters go to. The steps get these by reference: the driver writes the job's
pairs and index metadata to a file (`write_job`) and the steps carry its path, reading it once
per worker process (`read_job`). Carried in the steps, the layouts alone made a job's graph grow
with the shards and the pairs: one pair of 10,000 embedding shards per language put 3.1 MB of
pickled layouts into the search and selection job's graph (Dataflow takes up to 10 MB).

Steps that send a pair's blocks on by the other side's shard key them by groups of consecutive
shards (`shard_groups`): a block goes to every shard its rows touch, and rows fall in every
shard, so by single shards the blocks would number shards x shards per step, 10^8 work files of
a few dozen rows each at a billion sentences per side in shards of 100,000.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from apache_beam.io.filesystems import FileSystems

from mining.embedding_store import ShardLayout
from pipelines.work_files import get, put

# A language's shards form up to GROUPS groups, which stay that many keys to spread over workers.
# A group's worker holds its shards' neighbour means (400 KB a shard of 100,000 rows), edges
# (about 5 MB a shard) or, in assembly, pairs with their texts (in max mode at most one a row),
# so a group has at most GROUP_SHARDS shards: beyond 4,096 shards a language has more groups.
GROUPS = 256
GROUP_SHARDS = 16


def shard_groups(layouts: dict[str, ShardLayout]) -> dict[str, int]:
    """Consecutive shards per group, for each language: enough for GROUPS groups, at most
    GROUP_SHARDS."""
    return {
        lang: min(-(-layout.shards // GROUPS), GROUP_SHARDS) for lang, layout in layouts.items()
    }


@dataclass(frozen=True)
class PairContext:
    name: str  # SRC-TGT
    src: str
    tgt: str
    layouts: dict[str, ShardLayout]  # both languages'
    out: str  # where its Parquet parts go
    namespace: str  # its counters', apart from the other pairs' in the same job
    cuts: tuple = (None, None, None)  # its assembly's (threshold, max score, min cosine)
    group_shards: dict[str, int] = field(default_factory=dict)  # by language; absent: 1

    def shard_group(self, lang: str, shard):
        """The group of `lang`'s shard number `shard` (or of each in an array of them)."""
        return shard // self.group_shards.get(lang, 1)

    def group_of(self, lang: str, rows: np.ndarray) -> np.ndarray:
        """The group of the shard holding each of `lang`'s row ids."""
        return self.shard_group(lang, self.layouts[lang].shard_of(rows))

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

"""What the workers of shared mine steps know of each pair.

One set of steps mines every pair of a job: each element's key starts with its pair's name, and a
step looks the pair up by it (`{name: PairContext}`) for its languages' shard layouts, its work
directory and the namespace its counters go to.
"""

from __future__ import annotations

from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from mining.embedding_store import ShardLayout


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


def by_name(pairs) -> dict[str, PairContext]:
    return {pair.name: pair for pair in pairs}

"""Pages recovered from damaged copies of the bundled sample crawl, out of undamaged pages.

    python benchmarks/resync_recovery.py [--seeds 10]

The damage of issue #14: a member removed, 3 KB of garbage between two gzip members, bytes
flipped inside one member, twenty bytes flipped anywhere (several seeds), five wrong
Content-Length values at the start of the plain (decompressed) WARC, and a cut tail. A page
counts as recovered only if its payload equals the original's.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_resync import (  # noqa: E402
    PAGE_OF_MEMBER,
    PAGES,
    PLAIN,
    SAMPLE,
    SPANS,
    plain_records,
    read,
)


def recovered(data: bytes, damaged_members=()) -> tuple[int, int]:
    """(pages recovered intact, undamaged pages)."""
    lost = {PAGE_OF_MEMBER[m] for m in damaged_members if m in PAGE_OF_MEMBER}
    pages, _ = read(data)
    intact = sum(PAGES.get(url) == payload for url, payload in pages.items())
    return intact, len(PAGES) - len(lost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    seeds = parser.parse_args().seeds
    rows = []
    member = sorted(PAGE_OF_MEMBER)[10]
    start, end = SPANS[member]
    rows.append(("member removed", *recovered(SAMPLE[:start] + SAMPLE[end:], [member])))
    at = SPANS[100][0]
    garbage = np.random.default_rng(0).bytes(3000)
    rows.append(("3 KB garbage between members", *recovered(SAMPLE[:at] + garbage + SAMPLE[at:])))
    damaged = bytearray(SAMPLE)
    start, end = SPANS[sorted(PAGE_OF_MEMBER)[40]]
    for i in range(start + 200, start + 220):
        damaged[i] ^= 0xFF
    rows.append(
        ("20 bytes flipped in one member", *recovered(bytes(damaged), [sorted(PAGE_OF_MEMBER)[40]]))
    )
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        damaged = bytearray(SAMPLE)
        flips = rng.choice(len(SAMPLE), 20, replace=False)
        for i in flips:
            damaged[i] ^= 1 << int(rng.integers(8))
        hit = {n for n, (s, e) in enumerate(SPANS) for i in flips if s <= i < e}
        rows.append((f"20 bytes flipped anywhere (seed {seed})", *recovered(bytes(damaged), hit)))
    records = plain_records(PLAIN)
    damaged = PLAIN
    for number in (8, 5, 3, 1, 0):
        _s, (a, b) = records[number]
        value = int(damaged[a:b]) + 137 if number % 2 else int(damaged[a:b]) // 2
        damaged = damaged[:a] + str(value).encode() + damaged[b:]
    rows.append(("5 wrong Content-Length (plain)", *recovered(damaged, [0, 1, 3, 5, 8])))
    start, end = SPANS[200]
    cut = SAMPLE[: start + (end - start) // 2]
    rows.append((f"cut inside member 200 of {len(SPANS)}", *recovered(cut, range(200, len(SPANS)))))
    print(f"{'damage':42} {'recovered':>9} {'undamaged':>9} {'share':>6}")
    for name, got, possible in rows:
        print(f"{name:42} {got:>9} {possible:>9} {got / possible:>6.1%}")
    print(
        f"(gzip: {len(SPANS)} members, plain: {len(plain_records(gzip.decompress(SAMPLE)))} "
        f"records, {len(PAGES)} pages)"
    )


if __name__ == "__main__":
    main()

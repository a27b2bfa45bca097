"""Throttled progress lines with a rate, for long per-file work on any runner."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("ccmine")


class Progress:
    def __init__(self, label: str, unit: str, every_s: float = 10.0):
        self.label, self.unit, self.every_s = label, unit, every_s
        self.count = 0
        self.start = self.last = time.monotonic()

    def step(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            log.info("%s: %d %s (%.1f/s)", self.label, self.count, self.unit, self.rate())

    def rate(self) -> float:
        return self.count / max(time.monotonic() - self.start, 1e-9)

    def done(self) -> None:
        log.info("%s: done, %d %s (%.1f/s)", self.label, self.count, self.unit, self.rate())

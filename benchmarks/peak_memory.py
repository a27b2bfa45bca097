"""Peak resident memory of a process, from /proc (VmHWM): ru_maxrss would carry the parent's
over fork and exec, and cannot be read for another process."""

from __future__ import annotations

from pathlib import Path


def peak_rss(pid: int | str = "self") -> int:
    """VmHWM of a process in bytes (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0

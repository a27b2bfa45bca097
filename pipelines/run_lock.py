"""One ccmine command at a time writes a local run directory.

Two commands writing the same run at once would remove each other's unfinished stage output
(each stage clears the temporary places of earlier runs of it). The lock is the kernel's
(`flock` on RUN/.ccmine.lock): it ends with the process that holds it, however that ends, so a
killed command leaves none behind. Runs on object stores (gs://) are not locked: they have no
such lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import sys
import time

from pipelines.stage_dir import StageError

LOCK_FILE = ".ccmine.lock"


@contextlib.contextmanager
def run_lock(run_dir: str):
    """Hold the run directory's lock while the block runs; StageError, naming the command that
    holds it, if another process does."""
    if "://" in run_dir:
        yield
        return
    created = not os.path.exists(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK_FILE)
    with open(path, "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise StageError(
                f"{run_dir} is in use by {holder}; run again once it has finished"
            ) from None
        lock.truncate(0)
        command = shlex.join(["ccmine", *sys.argv[1:]])
        lock.write(f"{command} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})\n")
        lock.flush()
        try:
            yield
        finally:
            if created and os.listdir(run_dir) == [LOCK_FILE]:  # a command that wrote nothing
                os.remove(path)
                os.rmdir(run_dir)

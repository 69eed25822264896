"""One run per run directory: an exclusive lock on ``runs/<id>/.lock`` for as long as a flow works in it.

Why ``flock``: the kernel drops the lock when its holder dies, however it dies (SIGKILL, a lost worker), so a
lock left behind by a killed run never blocks the next one and needs no staleness heuristic. The file records
who holds it (pid, host, flow run, start time) so the second run can say so in one line. On a shared network
filesystem ``flock`` is only as good as the filesystem's lock support: give concurrent runs distinct run ids.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

from kalm.run.paths import RunPaths

LOCK_FILE = ".lock"


class RunLocked(RuntimeError):
    """Another live process works in this run directory."""


@contextlib.contextmanager
def run_lock(run: RunPaths, flow_run: str | None = None) -> Iterator[None]:
    """Hold the run directory's lock for the ``with`` block; :class:`RunLocked` if another process holds it."""
    run.root.mkdir(parents=True, exist_ok=True)
    path = run.root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise RunLocked(
            f"run {run.root.name!r} is in use by {holder}: wait for it or use another run id"
        ) from None
    try:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "flow_run": flow_run,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        record = {}
    if not record:
        return "another process"
    flow_run = f", flow run {record['flow_run']!r}" if record.get("flow_run") else ""
    return f"pid {record.get('pid')} on {record.get('host')}{flow_run} since {record.get('since')}"


def ensure_free(run: RunPaths) -> None:
    """:class:`RunLocked` now if another process holds the run (a CLI checks before starting a flow; the
    flow's own :func:`run_lock` stays the authority, as the holder may change in between)."""
    if (run.root / LOCK_FILE).exists():
        with run_lock(run):
            pass

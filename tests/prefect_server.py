"""A real Prefect server on a free loopback port, with the project's deployments registered (kalm serve's own
start, deploy and stop): the auth and deployment tests run against it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

from kalm.cli import control
from kalm.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def deployed_server(root: Path) -> Iterator[Settings]:
    """Start a server with state and runs under ``root``, deploy prefect.yaml, stop it (and its worker) after."""
    settings = Settings(state_dir=root / "state", runs_dir=root / "runs", server_port=free_port())
    control.start_server(settings)
    try:
        control.deploy(settings)
        yield settings
    finally:
        control.stop(settings)

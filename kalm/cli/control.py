"""The processes behind ``kalm serve`` / ``kalm stop``: a local Prefect server, the work pool, the deployments, a worker.

Everything binds to loopback. Process ids and logs live in the state directory (``.state/`` by default), so
``kalm stop`` can end exactly what ``kalm serve`` started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kalm.settings import PROJECT_ROOT, Settings

PREFECT = [sys.executable, "-m", "prefect"]


def api_url(settings: Settings) -> str:
    return f"http://{settings.server_host}:{settings.server_port}/api"


def server_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=api_url(settings),
        PREFECT_HOME=str(settings.state_dir / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_API_URL=api_url(settings),
        KALM_RUNS_DIR=str(settings.runs_dir),
    )
    return env


def _spawn(name: str, command: list[str], settings: Settings) -> int:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.state_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=server_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (settings.state_dir / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def wait_healthy(settings: Settings, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(api_url(settings) + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(
        f"Prefect server at {api_url(settings)} not healthy after {timeout_s:.0f} s "
        f"(log: {settings.state_dir / 'server.log'})"
    )


def start_server(settings: Settings) -> None:
    _spawn(
        "server",
        [*PREFECT, "server", "start", "--host", settings.server_host, "--port", str(settings.server_port)],
        settings,
    )
    wait_healthy(settings)


def deploy(settings: Settings) -> None:
    """Create the work pool and register every deployment of ``prefect.yaml``."""
    env = server_env(settings)
    subprocess.run(
        [*PREFECT, "work-pool", "create", settings.work_pool, "--type", "process", "--overwrite"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*PREFECT, "--no-prompt", "deploy", "--all"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def start_worker(settings: Settings, run_once: bool = False) -> int:
    command = [*PREFECT, "worker", "start", "--pool", settings.work_pool, "--type", "process"]
    return _spawn("worker", [*command, "--run-once"] if run_once else command, settings)


def stop(settings: Settings) -> list[str]:
    """Terminate the worker and the server started by ``kalm serve``; return what was stopped."""
    stopped = []
    for name in ("worker", "server"):
        pid_file = settings.state_dir / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            _wait_gone(pid)
            stopped.append(name)
        except ProcessLookupError:
            pass
        pid_file.unlink()
    return stopped


def _wait_gone(pid: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


def pid_path(settings: Settings, name: str) -> Path:
    return settings.state_dir / f"{name}.pid"

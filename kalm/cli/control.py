"""The processes behind ``kalm serve`` / ``kalm stop``: a local Prefect server, the work pool, the deployments, a worker.

Everything binds to loopback unless ``KALM_SERVER_HOST`` / ``kalm serve --host`` says otherwise, and then only
with Prefect's basic authentication on (``PREFECT_SERVER_API_AUTH_STRING`` from the environment, never from a
file of the project). Process ids and logs live in the state directory (``.state/`` by default), so
``kalm stop`` can end exactly what ``kalm serve`` started.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kalm.settings import PROJECT_ROOT, Settings

PREFECT = [sys.executable, "-m", "prefect"]
SERVER_AUTH = "PREFECT_SERVER_API_AUTH_STRING"
CLIENT_AUTH = "PREFECT_API_AUTH_STRING"


class AuthRequired(RuntimeError):
    """A server reachable beyond this machine without authentication was asked for."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_auth(settings: Settings) -> None:
    """Refuse a non-loopback bind unless the server's basic-auth string is set in the environment."""
    if not is_loopback(settings.server_host) and not os.environ.get(SERVER_AUTH):
        raise AuthRequired(
            f"the Prefect server would listen on {settings.server_host} without authentication: set "
            f"{SERVER_AUTH}=user:password (and {CLIENT_AUTH} on clients) in the environment, see README 'Security'"
        )


def api_url(settings: Settings) -> str:
    """Where this machine's clients reach the server (loopback when it listens on every address)."""
    host = "127.0.0.1" if settings.server_host in ("0.0.0.0", "::") else settings.server_host
    return f"http://{host}:{settings.server_port}/api"


def server_env(settings: Settings) -> dict[str, str]:
    """The environment of the server, the worker and ``prefect deploy``: the clients started here use the
    server's own credentials unless a client auth string is set."""
    env = dict(os.environ)
    if env.get(SERVER_AUTH) and not env.get(CLIENT_AUTH):
        env[CLIENT_AUTH] = env[SERVER_AUTH]
    env.setdefault("PREFECT_UI_API_URL", ui_api_url(settings))
    env.update(
        PREFECT_API_URL=api_url(settings),
        PREFECT_HOME=str(settings.state_dir / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        KALM_RUNS_DIR=str(settings.runs_dir),
        KALM_STATE_DIR=str(settings.state_dir),  # the worker's flows: the server's results store
    )
    return env


def ui_api_url(settings: Settings) -> str:
    """The API address the UI's browsers use: this machine's name when it listens beyond loopback
    (``PREFECT_UI_API_URL`` in the environment wins, e.g. behind a proxy)."""
    if is_loopback(settings.server_host):
        return api_url(settings)
    host = socket.getfqdn() if settings.server_host in ("0.0.0.0", "::") else settings.server_host
    return f"http://{host}:{settings.server_port}/api"


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
            with urllib.request.urlopen(authorized(api_url(settings) + "/health"), timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(
        f"Prefect server at {api_url(settings)} not healthy after {timeout_s:.0f} s "
        f"(log: {settings.state_dir / 'server.log'})"
    )


def authorized(url: str) -> urllib.request.Request:
    """A request to the API carrying the client's basic-auth credentials when they are set."""
    request = urllib.request.Request(url)
    credentials = os.environ.get(CLIENT_AUTH) or os.environ.get(SERVER_AUTH)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    return request


def start_server(settings: Settings) -> None:
    check_auth(settings)
    _spawn(
        "server",
        [*PREFECT, "server", "start", "--host", settings.server_host, "--port", str(settings.server_port)],
        settings,
    )
    wait_healthy(settings)


def deploy(settings: Settings) -> None:
    """Create the work pools (the CPU one a local worker serves, the GPU one) and register every deployment of
    ``prefect.yaml``."""
    env = server_env(settings)
    for pool in (settings.work_pool, settings.gpu_work_pool):
        subprocess.run(
            [*PREFECT, "work-pool", "create", pool, "--type", "process", "--overwrite"],
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

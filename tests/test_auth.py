"""Authentication beyond loopback: a real Prefect server with basic auth, its clients, and the refusal to serve
unauthenticated on a public address."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from kalm.cli import app, control
from kalm.settings import PROJECT_ROOT, Settings
from tests.prefect_server import deployed_server, free_port

CREDENTIALS = "kalm-admin:not-a-real-secret"


def test_serve_on_a_public_address_without_auth_refuses_in_one_line(monkeypatch):
    monkeypatch.delenv(control.SERVER_AUTH, raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", str(free_port())])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert "without authentication" in result.output and control.SERVER_AUTH in result.output


def test_loopback_needs_no_auth_and_names_resolve_as_public():
    assert (
        control.is_loopback("127.0.0.1") and control.is_loopback("::1") and control.is_loopback("localhost")
    )
    assert not control.is_loopback("0.0.0.0") and not control.is_loopback("prefect.example.org")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(control.SERVER_AUTH, CREDENTIALS)
        patch.delenv(control.CLIENT_AUTH, raising=False)
        with deployed_server(tmp_path_factory.mktemp("auth")) as settings:
            yield settings


def request(url: str, credentials: str | None) -> urllib.request.Request:
    out = urllib.request.Request(url)
    if credentials:
        out.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    return out


def status(url: str, credentials: str | None) -> int:
    try:
        with urllib.request.urlopen(request(url, credentials), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_requests_without_credentials_are_refused(server):
    version = control.api_url(server) + "/admin/version"  # /health stays open for probes
    assert status(version, None) == 401
    assert status(version, "kalm-admin:wrong") == 401
    assert status(version, CREDENTIALS) == 200


def prefect(settings: Settings, *args: str, credentials: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in control.server_env(settings).items() if k != control.SERVER_AUTH}
    env.pop(control.CLIENT_AUTH, None)
    if credentials:
        env[control.CLIENT_AUTH] = credentials
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_deployment_run_and_worker_work_with_credentials(server):
    refused = prefect(server, "deployment", "run", "reevaluate/nightly", credentials=None)
    assert refused.returncode != 0
    started = prefect(server, "deployment", "run", "reevaluate/nightly", credentials=CREDENTIALS)
    assert started.returncode == 0, started.stderr[-2000:]
    flow_run_id = next(line.split()[-1] for line in started.stdout.splitlines() if "UUID" in line)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(control.SERVER_AUTH, CREDENTIALS)  # the worker gets the client credentials from it
        control.start_worker(server, run_once=True)
    deadline, state = time.monotonic() + 300, {}
    while time.monotonic() < deadline:
        url = f"{control.api_url(server)}/flow_runs/{flow_run_id}"
        with urllib.request.urlopen(request(url, CREDENTIALS), timeout=10) as response:
            state = json.load(response).get("state") or {}
        if state.get("type") in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(2)
    assert state.get("type") == "COMPLETED", (server.state_dir / "worker.log").read_text()[-3000:]

"""The compose file is valid and the images install the way the README does (no Docker engine runs here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from kalm.settings import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "docker"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed (make test installs it)"
)
def compose_config(**env: str) -> subprocess.CompletedProcess:
    secrets = ("POSTGRES_PASSWORD", "PREFECT_AUTH_STRING", "RAY_AUTH_TOKEN")
    base = {k: v for k, v in os.environ.items() if k not in secrets}
    return subprocess.run(
        ["docker-compose", "-f", str(DOCKER / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=base | env,
    )


SECRETS = {"POSTGRES_PASSWORD": "pg-secret", "PREFECT_AUTH_STRING": "admin:s3cret", "RAY_AUTH_TOKEN": "tok"}


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed (make test installs it)"
)
@pytest.mark.parametrize("unset", sorted(SECRETS))
def test_compose_stops_naming_each_unset_secret(unset):
    result = compose_config(**{k: v for k, v in SECRETS.items() if k != unset})
    assert result.returncode != 0
    assert f"set {unset}" in result.stderr, result.stderr


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed (make test installs it)"
)
def test_compose_config_is_valid():
    result = compose_config(**SECRETS)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) == {"postgres", "prefect-server", "worker", "ray-head", "ray-worker"}
    worker_env = config["services"]["worker"]["environment"]
    assert worker_env["PREFECT_API_URL"].startswith("http://prefect-server:")
    assert worker_env["KALM_RAY_ADDRESS"].startswith("ray://ray-head:")
    server = config["services"]["prefect-server"]
    assert "postgresql+asyncpg://" in server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    # auth on everywhere, from the environment; the only published port on loopback
    assert server["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == worker_env["PREFECT_API_AUTH_STRING"]
    for name in ("ray-head", "ray-worker", "worker"):
        assert config["services"][name]["environment"]["RAY_AUTH_MODE"] == "token"
    published = [p for s in config["services"].values() for p in s.get("ports", [])]
    assert [p["host_ip"] if isinstance(p, dict) else p.split(":")[0] for p in published] == ["127.0.0.1"]


# A key that names a secret must take its value from the environment (``${VAR...}``), never a literal.
SECRET_KEY = re.compile(
    r"(?i)^\s*-?\s*[\w-]*(password|auth_string|auth_token|secret|api_key)[\w-]*\s*[:=]\s*(\S.*)$"
)
URL_CREDENTIALS = re.compile(r"://[^:/\s]+:([^@\s]+)@")


def test_no_secret_in_a_committed_config():
    files = [
        *PROJECT_ROOT.glob("configs/*.yaml"),
        PROJECT_ROOT / "prefect.yaml",
        DOCKER / "compose.yaml",
        *PROJECT_ROOT.glob("data_catalog/*.yaml"),
    ]
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.split("#", 1)[0]
            values = [m.group(2) for m in [SECRET_KEY.search(text)] if m] + URL_CREDENTIALS.findall(text)
            if any(not value.lstrip("'\"").startswith("${") for value in values):
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert found == []
    assert len(files) > 4  # the scan saw the profiles, prefect.yaml, compose and the catalogs


def test_cpu_image_installs_like_the_readme():
    dockerfile = (DOCKER / "Dockerfile.cpu").read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "RUN make setup" in dockerfile
    assert "-r requirements-cpu.txt" in makefile
    assert "torch==2.13.0" in (PROJECT_ROOT / "requirements-cpu.txt").read_text()
    assert "-r requirements-gpu.txt" in (DOCKER / "Dockerfile.cuda").read_text()

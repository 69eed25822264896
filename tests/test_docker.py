"""The compose file is valid and the images install the way the README does (no Docker engine runs here)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from kalm.settings import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "docker"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed (make test installs it)"
)
def test_compose_config_is_valid():
    result = subprocess.run(
        ["docker-compose", "-f", str(DOCKER / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) == {"postgres", "prefect-server", "worker", "ray-head", "ray-worker"}
    worker_env = config["services"]["worker"]["environment"]
    assert worker_env["PREFECT_API_URL"].startswith("http://prefect-server:")
    assert worker_env["KALM_RAY_ADDRESS"].startswith("ray://ray-head:")
    assert (
        "postgresql+asyncpg://"
        in config["services"]["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )


def test_cpu_image_installs_like_the_readme():
    dockerfile = (DOCKER / "Dockerfile.cpu").read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "RUN make setup" in dockerfile
    assert "-r requirements-cpu.txt" in makefile
    assert "torch==2.13.0" in (PROJECT_ROOT / "requirements-cpu.txt").read_text()
    assert "-r requirements-gpu.txt" in (DOCKER / "Dockerfile.cuda").read_text()

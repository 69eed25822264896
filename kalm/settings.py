"""Process settings (paths, Ray address, Prefect API, offline mode), overridable by ``KALM_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KALM_", extra="ignore")

    runs_dir: Path = Field(default=PROJECT_ROOT / "runs", description="parent folder of run directories")
    state_dir: Path = Field(
        default=PROJECT_ROOT / ".state", description="local server state, pid files, results store"
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster (`auto`, `ray://host:port`); unset = local Ray"
    )
    hf_offline: bool = Field(default=True, description="forbid Hugging Face hub access at run time")
    server_host: str = Field(default="127.0.0.1", description="host `kalm serve` binds the Prefect server to")
    server_port: int = Field(default=4200, description="port of the Prefect server started by `kalm serve`")
    work_pool: str = Field(default="kalm-process", description="Prefect process work pool of the deployments")
    gpu_work_pool: str = Field(
        default="kalm-gpu",
        description="Prefect work pool of the GPU deployments (served by a GPU node's worker)",
    )
    verify_outputs: Literal["stat", "full"] = Field(
        default="stat",
        description="how a cached step's outputs are checked before its result is used: size and mtime, "
        "hashing only files whose mtime moved (stat), or hashing every file every time (full)",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""The run directory: one folder per run that every stage reads from and writes to, and the names inside it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kalm.settings import get_settings


def write_json(path: Path, value: object, indent: int = 2) -> None:
    """Write JSON atomically (a temporary file, then a rename): a concurrent reader sees the old or the new
    record, never half of one (sources collect in parallel threads and record their steps as they finish)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(value)}.tmp")
    tmp.write_text(json.dumps(value, indent=indent, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def checkpoint_name(stage: str, seed: int | None = None) -> str:
    """``pretrain``, ``finetune-seed0``, …: a training stage's checkpoint folder and step name suffix."""
    return stage if seed is None else f"{stage}-seed{seed}"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def for_run(cls, run_id: str, runs_dir: Path | str | None = None) -> RunPaths:
        return cls(Path(runs_dir or get_settings().runs_dir) / run_id)

    @classmethod
    def open(cls, run_id: str, runs_dir: Path | str | None = None) -> RunPaths:
        """The run's paths with its folder created (what a flow or a CLI command works in)."""
        run = cls.for_run(run_id, runs_dir)
        run.root.mkdir(parents=True, exist_ok=True)
        return run

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def demo_eval_tasks(self) -> Path:
        return self.root / "eval_tasks"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def collected(self) -> Path:
        return self.data / "collected"

    @property
    def dedup(self) -> Path:
        return self.data / "dedup"

    @property
    def decontaminated(self) -> Path:
        return self.data / "decontaminated"

    @property
    def balanced(self) -> Path:
        return self.data / "balanced"

    @property
    def mined(self) -> Path:
        return self.data / "mined"

    @property
    def embedding_cache(self) -> Path:
        """Mining's embedding cache: outside ``data/mined``, whose content hash is the step's fingerprint."""
        return self.root / "cache" / "embeddings"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / name

    def train_state(self, name: str) -> Path:
        """Resumable in-process training checkpoints of one stage (the ``local`` launcher)."""
        return self.root / "train-state" / name

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def steps(self) -> Path:
        return self.root / "steps"

    @property
    def lineage(self) -> Path:
        return self.root / "lineage"

    @property
    def ray_storage(self) -> Path:
        return self.root / "ray"

    @property
    def results_storage(self) -> Path:
        return self.root / ".prefect-results"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

"""Resumable training checkpoints: what a stage needs to continue exactly where it stopped.

A checkpoint directory holds ``state.json`` (step, tokens seen, sampler position, the per-step log so far, the
config hash), ``rng/rank<r>.pt`` (python, numpy and torch RNG states of *every* rank) and the backend's files
(model/optimizer/scheduler for DDP; DeepSpeed's own sharded layout for ZeRO). Every rank writes only its own
files, so under Ray each rank reports its local folder and Ray merges them into one checkpoint in storage —
which also works on a multi-node cluster without a shared temp directory.

The config hash covers what determines the weights (stage, model, data location, init checkpoint) and not the
scaling settings, so a checkpoint from another run's recipe is refused rather than silently continued.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "state.json"
RNG_DIR = "rng"
STEP_PREFIX = "step-"


def config_hash(job_fields: dict[str, Any]) -> str:
    """A stable hash of the weight-determining job fields (JSON with sorted keys)."""
    text = json.dumps(job_fields, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class TrainState:
    """The loop's own progress: restored as a whole so the remaining steps (and the logs) match exactly."""

    step: int = 0
    tokens: int = 0
    sampler: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # one per step: loss, lr, tokens/s, MFU
    config_hash: str = ""
    world_size: int = 1
    resumed_at: list[int] = field(default_factory=list)  # the step of every resume, for the record

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        return cls(**json.loads(text))


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def write_rank_files(directory: Path, state: TrainState, rank: int) -> None:
    """This rank's share of the checkpoint: its RNG states, and (rank 0) the train state."""
    (directory / RNG_DIR).mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), directory / RNG_DIR / f"rank{rank}.pt")
    if rank == 0:
        (directory / STATE_FILE).write_text(state.to_json(), encoding="utf-8")


def read_train_state(directory: Path) -> TrainState:
    return TrainState.from_json((directory / STATE_FILE).read_text(encoding="utf-8"))


def restore_rng(directory: Path, rank: int) -> None:
    # weights_only=False: numpy's RNG state is a tuple holding an ndarray (our own file, not untrusted input).
    set_rng_state(torch.load(directory / RNG_DIR / f"rank{rank}.pt", weights_only=False))


def check_resumable(state: TrainState, expected_hash: str, world_size: int, directory: Path) -> None:
    """Refuse a checkpoint of another recipe, or of another world size (its per-rank files would not match)."""
    if state.config_hash != expected_hash:
        raise ValueError(
            f"checkpoint {directory} was written for another config ({state.config_hash} != {expected_hash})"
        )
    if state.world_size != world_size:
        raise ValueError(f"checkpoint {directory} has {state.world_size} ranks, this run has {world_size}")


# ----------------------------------------------------------------------------- local (in-process) checkpoints
def step_dir(root: Path, step: int) -> Path:
    return root / f"{STEP_PREFIX}{step:08d}"


def complete_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints under ``root``, oldest first (a folder without ``state.json`` was interrupted)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(STEP_PREFIX) and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def apply_retention(root: Path, keep: int) -> None:
    """Keep the last ``keep`` complete checkpoints; drop older ones and interrupted leftovers."""
    complete = complete_checkpoints(root)
    for old in complete[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(f"{STEP_PREFIX}*"):
        if leftover not in complete:
            shutil.rmtree(leftover, ignore_errors=True)

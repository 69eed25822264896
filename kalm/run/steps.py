"""Step records: each step's summary in ``steps/<name>.json`` (what the report is rebuilt from) and its lineage.

A flow that starts half-way (``train`` after ``build-data``, one CLI stage) finds its upstream here:
:func:`recorded` returns the step's summary or fails naming what produces it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from kalm.run.lineage import write_lineage
from kalm.run.outputs import write_outputs
from kalm.run.paths import RunPaths, write_json


class MissingStepError(FileNotFoundError):
    """A stage needs a step this run has not recorded yet; the message says which stage makes it."""


def record_step(
    run: RunPaths,
    name: str,
    summary: dict,
    parents: tuple[str, ...] = (),
    inputs: dict[str, str] | None = None,
    outputs: Iterable[Path] = (),
    started: float | None = None,
) -> dict:
    """Keep a step's summary in ``steps/<name>.json``, the files it wrote (``outputs``, files or folders) in
    ``steps/<name>.outputs.json`` and its lineage record; returns the summary. With ``started`` (a
    ``time.perf_counter()`` taken when the step began) the summary gains the step's ``step_wall_s``."""
    if started is not None:
        summary = {**summary, "step_wall_s": round(time.perf_counter() - started, 3)}
    run.steps.mkdir(parents=True, exist_ok=True)
    parent_fps = {parent: _read(run, parent).get("fingerprint", "unknown") for parent in parents}
    write_outputs(run, name, outputs)
    write_json(run.steps / f"{name}.json", summary)
    write_lineage(run.root, name, summary, parent_fps, inputs or {})
    return summary


def _read(run: RunPaths, step: str) -> dict:
    path = run.steps / f"{step}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_steps(run: RunPaths) -> dict[str, dict]:
    if not run.steps.exists():
        return {}
    summaries = (p for p in sorted(run.steps.glob("*.json")) if not p.name.endswith(".outputs.json"))
    return {p.stem: json.loads(p.read_text()) for p in summaries}


def recorded(run: RunPaths, step: str, produced_by: str) -> dict:
    """A step summary recorded earlier, or :class:`MissingStepError` naming the stage that makes it."""
    steps = read_steps(run)
    if step not in steps:
        raise MissingStepError(f"run {run.root.name!r} has no {step!r} step yet: run {produced_by} first")
    return steps[step]


def recorded_trains(run: RunPaths) -> dict[str, dict]:
    """Every recorded training stage by checkpoint name (``pretrain``, ``finetune-seed0``, …)."""
    trains = {n.removeprefix("train-"): s for n, s in read_steps(run).items() if n.startswith("train-")}
    if not trains:
        raise MissingStepError(f"run {run.root.name!r} has no trained checkpoints: run the train flow first")
    return trains

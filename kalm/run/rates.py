"""The speeds and keep fractions a plan rests on (``benchmarks/throughput.json``), measured on real runs.

:func:`calibrate` reads them off a finished run's step records (rows in and out of every data step, the
training stages' tokens and times, mining and evaluation times), so a plan for a bigger run of the same
kind extrapolates from what a smaller one really did; ``kalm plan --calibrate RUN`` records an entry.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from kalm.run.paths import RunPaths, write_json
from kalm.run.profile import Profile
from kalm.settings import PROJECT_ROOT

RATES_FILE = PROJECT_ROOT / "benchmarks" / "throughput.json"


class Rates(BaseModel):
    """Speeds and keep fractions a plan assumes; each entry names the run or measurement it came from."""

    name: str = Field(description="entry name, e.g. cpu-minilm")
    source: str = Field(description="where the numbers were measured (a run, a command, a reference)")
    data_rows_per_s: float = Field(gt=0, description="collected rows through collect..balance per second")
    dedup_keep: float = Field(1.0, gt=0, le=1, description="share of rows dedup keeps")
    decontaminate_keep: float = Field(1.0, gt=0, le=1, description="share of rows decontamination keeps")
    mine_keep: float = Field(1.0, gt=0, le=1, description="share of fine-tuning rows mining keeps")
    mine_rows_per_s: float = Field(gt=0, description="fine-tuning rows mined per second")
    tokens_per_text: float = Field(gt=0, description="mean tokens of a training text after truncation")
    train_tokens_per_s: float = Field(gt=0, description="training tokens per second per worker (or GPU)")
    train_stage_overhead_s: float = Field(
        0.0, ge=0, description="a training stage's start-up and export time"
    )
    eval_texts_per_s: float = Field(gt=0, description="evaluation texts encoded and scored per second")
    eval_model_overhead_s: float = Field(0.0, ge=0, description="per model scored: loading, tasks set-up")
    parquet_bytes_per_row: float = Field(gt=0, description="zstd Parquet bytes per canonical row")


def load_rates(name_or_path: str) -> Rates:
    """An entry of ``benchmarks/throughput.json`` by name, or a JSON file holding one entry."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return Rates.model_validate_json(path.read_text())
    entries = json.loads(RATES_FILE.read_text())
    if name_or_path not in entries:
        raise ValueError(f"no throughput entry {name_or_path!r} (known: {', '.join(sorted(entries))})")
    return Rates.model_validate(entries[name_or_path] | {"name": name_or_path})


def default_rates(profile: Profile) -> str:
    """The throughput entry that fits the profile's hardware and backbone."""
    if profile.train.scaling.use_gpu:
        return "gpu-qwen2-0.5b"
    base = (profile.train.model.base or "").lower()
    return "cpu-minilm" if "minilm" in base else "cpu-smollm2" if "smollm" in base else "cpu-tiny"


def calibrate(run: RunPaths, profile: Profile, name: str, source: str) -> Rates:
    """The rates a finished run of ``profile`` achieved (its evaluation must have run, not come from the store)."""
    from kalm.evaluation.task_spec import eval_texts, select_task_specs
    from kalm.run.steps import read_steps

    steps = read_steps(run)
    collect = [s for n, s in steps.items() if n.startswith("collect-")]
    rows_in = sum(s["rows_written"] for s in collect)
    data_wall = sum(s["wall_time_s"] for s in collect) + sum(
        steps[n]["step_wall_s"] for n in ("dedup", "decontaminate", "balance")
    )
    dedup, decon = steps["dedup"]["stats"], steps["decontaminate"]["stats"]
    finetune_rows = sum(
        c["rows_after"] for c in steps["balance"]["stats"]["stages"].get("finetune", {}).values()
    )
    trains = {n: s for n, s in steps.items() if n.startswith("train-")}
    workers = profile.train.scaling.num_workers
    loop_wall = sum(t["metrics"]["wall_time_s"] for t in trains.values())
    tokens = sum(t["metrics"]["tokens"] for t in trains.values())
    texts = sum(
        t["metrics"]["examples"]
        * (2 + getattr(profile.train, n.removeprefix("train-").split("-")[0]).hard_negatives)
        for n, t in trains.items()
    )
    local = profile.eval_tasks_dir(run)
    names = set(profile.evaluate.tasks or [])
    eval_count = sum(
        len(eval_texts(s, include_corpus=True))
        for s in select_task_specs(local)
        if not names or s.name in names
    )
    scored = [m for m in steps.get("evaluate", {}).values() if m["evaluated"] and not m["cached"]]
    parquet = sum(
        p.stat().st_size for p in run.collected.rglob("part-*.parquet") if "quarantine" not in p.parts
    )
    mine = steps.get("mine")
    return Rates(
        name=name,
        source=source,
        data_rows_per_s=rows_in / data_wall,
        dedup_keep=dedup["rows_out"] / dedup["rows_in"],
        decontaminate_keep=decon["rows_out"] / decon["rows_in"],
        mine_keep=mine["stats"]["rows_out"] / mine["stats"]["rows_in"] if mine else 1.0,
        mine_rows_per_s=finetune_rows / mine["wall_time_s"] if mine else 1.0,
        tokens_per_text=tokens / texts,
        train_tokens_per_s=tokens / loop_wall / workers,
        train_stage_overhead_s=sum(t["step_wall_s"] - t["metrics"]["wall_time_s"] for t in trains.values())
        / len(trains),
        eval_texts_per_s=eval_count * len(scored) / sum(m["wall_s"] for m in scored) if scored else 1.0,
        parquet_bytes_per_row=parquet / rows_in,
    )


def record_rates(rates: Rates, path: Path = RATES_FILE) -> None:
    entries = json.loads(path.read_text()) if path.is_file() else {}
    entries[rates.name] = rates.model_dump(mode="json", exclude={"name"})
    write_json(path, dict(sorted(entries.items())))

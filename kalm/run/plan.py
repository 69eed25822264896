"""``kalm plan``: what a run of a profile will process and cost, before it is paid for.

Per stage: rows (counted by a collection already made, else the catalog's per-source ``rows_hint``, else the
catalog's ``expected_rows``), then what dedup, decontamination, balancing and mining keep of them, optimizer
steps and tokens per training stage, wall time (and GPU-hours on GPUs), disk for Parquet, checkpoints and
embedding caches, and which steps the run has already done. Every estimate comes from a :class:`Rates` entry
(:mod:`kalm.run.rates`: measured on a real run), named in the plan
with the fractions and speeds it assumes, so a user can see what the numbers rest on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, Field

from kalm.run.outputs import outputs_problem
from kalm.run.paths import RunPaths, checkpoint_name
from kalm.run.profile import Profile
from kalm.run.rates import Rates


class StagePlan(BaseModel):
    stage: str
    rows: int | None = None
    basis: str = Field("", description="counted / catalog hints / expected sizes / estimated")
    steps: int | None = None
    tokens: int | None = None
    wall_s: float = 0.0
    gpu_hours: float | None = None
    disk_bytes: int = 0
    done: bool = Field(False, description="recorded in the run with its outputs intact")


class RunPlan(BaseModel):
    profile: str
    run: str
    rates: Rates
    assumptions: list[str]
    stages: list[StagePlan]

    @property
    def wall_s(self) -> float:
        return sum(s.wall_s for s in self.stages if not s.done)

    @property
    def disk_bytes(self) -> int:
        return sum(s.disk_bytes for s in self.stages)


def plan_run(profile: Profile, run: RunPaths, rates: Rates) -> RunPlan:
    steps = _recorded(profile, run)
    assumptions = [f"speeds and keep fractions: {rates.name} ({rates.source})"]
    sources, basis = _collected_rows(profile, run, steps, assumptions)
    total_in = sum(sources.values())
    keep = rates.dedup_keep * rates.decontaminate_keep
    cap = profile.balance.per_source_cap
    capped: dict[str, float] = {}
    for (stage, _), rows in sources.items():
        capped[stage] = capped.get(stage, 0) + min(rows * keep, cap if cap is not None else math.inf)
    budget = profile.balance.total_budget
    balanced = {
        stage: int(min(rows, budget) if budget is not None else rows) for stage, rows in capped.items()
    }
    data = StagePlan(
        stage="data (collect, dedup, decontaminate, balance)",
        rows=sum(balanced.values()),
        basis=basis,
        wall_s=total_in / rates.data_rows_per_s,
        disk_bytes=int((2 * total_in + 2 * total_in * keep) * rates.parquet_bytes_per_row),
        done="balance" in steps,
    )
    if "balance" in steps:
        recorded = steps["balance"]["stats"]["stages"]
        balanced = {stage: sum(c["rows_after"] for c in cats.values()) for stage, cats in recorded.items()}
        data.rows, data.basis = sum(balanced.values()), "counted"
    plan = [data]
    params, width = _model_size(profile)
    finetune_rows = balanced.get("finetune", 0)
    if profile.mining.enabled:
        mined = (
            int(finetune_rows * rates.mine_keep)
            if "mine" not in steps
            else steps["mine"]["stats"]["rows_out"]
        )
        plan.append(
            StagePlan(
                stage="mine",
                rows=mined,
                basis="counted" if "mine" in steps else "estimated",
                wall_s=finetune_rows / rates.mine_rows_per_s,
                disk_bytes=int(mined * rates.parquet_bytes_per_row + 2 * finetune_rows * width * 4),
                done="mine" in steps,
            )
        )
        finetune_rows = mined
    stages = [("pretrain", None)] if profile.train.pretrain else []
    stages += [("finetune", seed) for seed in profile.train.soup_seeds]
    for stage, seed in stages:
        config = getattr(profile.train, stage)
        rows = balanced.get("pretrain", 0) if stage == "pretrain" else finetune_rows
        steps_ = config.max_steps or math.ceil(config.epochs * (rows // config.batch_size))
        tokens = int(steps_ * config.batch_size * (2 + config.hard_negatives) * rates.tokens_per_text)
        workers = profile.train.scaling.num_workers
        seconds = tokens / (rates.train_tokens_per_s * workers)
        name = f"train-{checkpoint_name(stage, seed)}"
        plan.append(
            StagePlan(
                stage=name,
                rows=rows,
                basis="from the rows above",
                steps=steps_,
                tokens=tokens,
                wall_s=rates.train_stage_overhead_s + seconds,
                gpu_hours=seconds * workers / 3600 if profile.train.scaling.use_gpu else None,
                disk_bytes=params * 4 * (1 + 3 * profile.train.scaling.keep_checkpoints),
                done=name in steps,
            )
        )
    trained = all(p.done for p in plan if p.stage.startswith("train-"))
    plan.append(StagePlan(stage="soup", disk_bytes=params * 4, done=trained and "soup" in steps))
    plan.append(_evaluation(profile, run, rates, steps, assumptions))
    plan[-1].done = plan[-1].done and plan[-2].done  # scores of this profile's soup, not another run's
    assumptions.append(
        f"dedup keeps {rates.dedup_keep:.1%}, decontamination {rates.decontaminate_keep:.1%}, mining "
        f"{rates.mine_keep:.1%}; {rates.tokens_per_text:.0f} tokens per text; "
        f"{rates.train_tokens_per_s:,.0f} training tokens/s per worker"
        + (" (per GPU)" if profile.train.scaling.use_gpu else "")
    )
    assumptions.append(f"model ≈ {params / 1e6:,.1f}M parameters, width {width}; checkpoints in fp32")
    return RunPlan(profile=profile.name, run=run.root.name, rates=rates, assumptions=assumptions, stages=plan)


def _recorded(profile: Profile, run: RunPaths) -> dict[str, dict]:
    """The run's recorded steps made with this profile's settings and whose outputs are still intact: what a
    run of the profile would take from the cache (a run folder another profile filled counts as empty)."""
    from kalm.run.steps import read_steps

    expected = _config_hashes(profile, run)
    done = {}
    for name, summary in read_steps(run).items():
        record = run.steps / f"{name}.outputs.json"
        if name in expected and summary.get("config_hash") != expected[name]:
            continue
        if record.is_file() and outputs_problem(run, json.loads(record.read_text())) is None:
            done[name] = summary
    return done


def _config_hashes(profile: Profile, run: RunPaths) -> dict[str, str]:
    """The config hash each step records, as this profile would make it."""
    from data_catalog.collect import source_config_hash
    from kalm.hashing import hash_value

    resolved = profile.resolve_catalog(run)
    hashes = {"collect": resolved.config_hash()}
    limit = resolved.catalog.limits.max_text_chars
    hashes |= {f"collect-{s.name}": source_config_hash(s, limit) for s in resolved.catalog.sources}
    for name in ("dedup", "decontaminate", "balance", "mining"):
        hashes[name.replace("mining", "mine")] = hash_value(getattr(profile, name).model_dump(mode="json"))
    pretrain = profile.train.pretrain is not None
    init = run.checkpoint("pretrain") if pretrain else None
    data = run.mined if profile.mining.enabled else None
    jobs = {"pretrain": profile.training_job(run, "pretrain")} if pretrain else {}
    for seed in profile.train.soup_seeds:
        jobs[checkpoint_name("finetune", seed)] = profile.training_job(run, "finetune", seed, init, data)
    hashes |= {f"train-{n}": hash_value(job.model_dump(mode="json")) for n, job in jobs.items()}
    return hashes


def _collected_rows(
    profile: Profile, run: RunPaths, steps: dict, assumptions: list[str]
) -> tuple[dict[tuple[str, str], int], str]:
    """Rows per (stage, source): counted by the run's collection, else the catalog's hints, else its
    ``expected_rows`` per stage (then one pseudo-source per stage, and the per-source cap cannot apply)."""
    catalog = profile.resolve_catalog(run).catalog
    if all(f"collect-{s.name}" in steps for s in catalog.sources):
        counted = {s.name: steps[f"collect-{s.name}"]["rows_written"] for s in catalog.sources}
        return {(s.stage.value, s.name): counted[s.name] for s in catalog.sources}, "counted"
    if all(s.rows_hint is not None for s in catalog.sources):
        return {(s.stage.value, s.name): s.rows_hint for s in catalog.sources}, "catalog hints"
    if catalog.expected_rows:
        assumptions.append(f"rows per stage are the catalog's expected_rows {catalog.expected_rows}")
        return {(stage, "*"): rows for stage, rows in catalog.expected_rows.items()}, "expected sizes"
    assumptions.append("the catalog gives no sizes: rows unknown, shown as 0")
    return {}, "unknown"


def _evaluation(
    profile: Profile, run: RunPaths, rates: Rates, steps: dict, assumptions: list[str]
) -> StagePlan:
    from kalm.evaluation.task_spec import eval_texts, select_task_specs

    local = profile.eval_tasks_dir(run)
    texts = 0
    if local is not None and local.is_dir():
        names = set(profile.evaluate.tasks or [])
        specs = [s for s in select_task_specs(local) if not names or s.name in names]
        texts = sum(len(eval_texts(s, include_corpus=True)) for s in specs)
    if profile.evaluate.benchmarks:
        assumptions.append(f"official benchmarks {profile.evaluate.benchmarks} are not sized offline")
    models = len([m for m in profile.evaluate.models if m != "finetune"]) + (
        len(profile.train.soup_seeds) if "finetune" in profile.evaluate.models else 0
    )
    return StagePlan(
        stage=f"evaluate ({models} models)",
        rows=texts,
        basis="texts counted in the tasks",
        wall_s=models * (rates.eval_model_overhead_s + texts / rates.eval_texts_per_s),
        done="evaluate" in steps,
    )


def _model_size(profile: Profile) -> tuple[int, int]:
    """(parameters, embedding width) of the profile's backbone, from its config, without loading weights."""
    model = profile.train.model
    if model.base is None:
        cfg = model.tiny.model_dump()
    elif (Path(model.base) / "config.json").is_file():
        cfg = json.loads((Path(model.base) / "config.json").read_text())
    else:
        from training.config import QWEN2_0_5B_SHAPE

        cfg = QWEN2_0_5B_SHAPE.model_dump()  # a hub id: the paper's backbone shape
    h, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    inter = cfg.get("intermediate_size", 4 * h)
    kv = cfg.get("num_key_value_heads", cfg.get("num_attention_heads", 1))
    head = h // cfg.get("num_attention_heads", 1)
    per_layer = 2 * h * h + 2 * h * kv * head + 3 * h * inter
    return vocab * h + layers * per_layer, h


def plan_markdown(plan: RunPlan) -> str:
    """The plan as Markdown: one row per stage, then the totals and every assumption it rests on."""
    from kalm.markdown import table

    rows = [
        [
            s.stage,
            "—" if s.rows is None else f"{s.rows:,}",
            s.basis or "—",
            "—" if s.steps is None else f"{s.steps:,}",
            "—" if s.tokens is None else f"{s.tokens:,}",
            _duration(s.wall_s),
            "—" if s.gpu_hours is None else f"{s.gpu_hours:,.1f}",
            _bytes(s.disk_bytes),
            "done" if s.done else "to run",
        ]
        for s in plan.stages
    ]
    headers = ["stage", "rows", "rows from", "steps", "tokens", "wall", "GPU-h", "disk", "status"]
    gpu = sum(s.gpu_hours or 0 for s in plan.stages if not s.done)
    lines = [
        f"# Plan: profile `{plan.profile}`, run `{plan.run}`",
        "",
        table(headers, rows, "lrlrrrrrl"),
        "",
        f"Still to run: about {_duration(plan.wall_s)}"
        + (f", {gpu:,.1f} GPU-hours" if gpu else "")
        + f"; disk about {_bytes(plan.disk_bytes)}. Margins: rows and steps ±20%, time ±50%.",
        "",
        "Assumptions:",
        "",
        *[f"- {a}" for a in plan.assumptions],
    ]
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"

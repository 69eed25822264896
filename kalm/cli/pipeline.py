"""``kalm run`` and the stage commands: each runs the flow (and the steps of it) that its deployment runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kalm.cli.app import (
    ProfileOpt,
    RunIdOpt,
    RunsDirOpt,
    app,
    checked,
    console,
    fail,
    run_flow,
    runs_dir_param,
)
from kalm.run.paths import RunPaths


def _check_inputs(profile: str, run_id: str, runs_dir: Path | None, catalog: Path | None = None) -> None:
    """Load the profile (and the catalog) and check no other run holds the run directory, so a bad file or a
    busy run is one line before any flow starts."""
    from kalm.run.lock import ensure_free
    from kalm.run.profile import load_profile

    resolved = checked(lambda: load_profile(profile).with_overrides(str(catalog) if catalog else None))
    checked(lambda: resolved.resolve_catalog(RunPaths(Path("."))))
    checked(lambda: ensure_free(RunPaths.for_run(run_id, runs_dir)))


def _data_flow(profile: str, run_id: str, runs_dir: Path | None, step: str, **params) -> dict:
    from flows.build_data import build_data

    _check_inputs(profile, run_id, runs_dir, params.get("catalog"))
    if params.get("catalog") is not None:
        params["catalog"] = str(Path(params["catalog"]).resolve())
    data = run_flow(
        build_data, profile=profile, run_id=run_id, runs_dir=runs_dir_param(runs_dir), steps=[step], **params
    )
    return data[step]


@app.command(rich_help_panel="Pipeline")
def run(profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None) -> None:
    """Run the full pipeline as the ``full-run`` Prefect flow (completed steps are cached)."""
    from flows.full_run import full_run

    _check_inputs(profile, run_id, runs_dir)
    result = run_flow(full_run, profile=profile, run_id=run_id, runs_dir=runs_dir_param(runs_dir))
    console.print(f"[bold green]done[/] — report: {result['report']}")


@app.command(rich_help_panel="Pipeline")
def collect(
    profile: ProfileOpt = "demo",
    run_id: RunIdOpt = "demo",
    runs_dir: RunsDirOpt = None,
    catalog: Annotated[Path | None, typer.Option(help="catalog YAML instead of the profile's")] = None,
    source: Annotated[list[str] | None, typer.Option(help="collect only these sources")] = None,
) -> None:
    """Collect the catalog's sources into ``data/collected``."""
    summary = _data_flow(profile, run_id, runs_dir, "collect", catalog=catalog, sources=source)
    for category, rows in summary["rows_by_category"].items():
        console.print(f"{category:32s} {rows:>10,d}")
    console.print(f"collected into {summary['output']}")


@app.command(rich_help_panel="Pipeline")
def dedup(profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None) -> None:
    """Remove exact and near duplicates: ``data/collected`` → ``data/dedup``."""
    summary = _data_flow(profile, run_id, runs_dir, "dedup")
    stats = summary["stats"]
    console.print(
        f"{stats['rows_in']} in, {stats['exact_duplicates']} exact, {stats['near_duplicates']} near, "
        f"{stats['rows_out']} out → {summary['output']}"
    )


@app.command(rich_help_panel="Pipeline")
def decontaminate(
    profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None
) -> None:
    """Drop rows that leak evaluation texts: ``data/dedup`` → ``data/decontaminated``."""
    summary = _data_flow(profile, run_id, runs_dir, "decontaminate")
    stats = summary["stats"]
    for task, entry in stats["per_task"].items():
        if entry["rows_dropped"]:
            console.print(f"{task:32s} {entry['rows_dropped']:>8,d} rows dropped")
    console.print(f"{stats['rows_in']} in, {stats['rows_dropped']} dropped → {summary['output']}")


@app.command(rich_help_panel="Pipeline")
def balance(profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None) -> None:
    """Cap sources and apply temperature quotas: ``data/decontaminated`` → ``data/balanced``."""
    summary = _data_flow(profile, run_id, runs_dir, "balance")
    console.print(f"balanced → {summary['output']}")


def _train_flow(profile: str, run_id: str, runs_dir: Path | None, **params) -> dict:
    from flows.train import train

    _check_inputs(profile, run_id, runs_dir)
    return run_flow(train, profile=profile, run_id=run_id, runs_dir=runs_dir_param(runs_dir), **params)


@app.command(rich_help_panel="Pipeline")
def mine(profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None) -> None:
    """Mine fine-tuning hard negatives with ``checkpoints/pretrain``: ``data/balanced`` → ``data/mined``."""
    result = _train_flow(profile, run_id, runs_dir, stages=["mine"])
    if "mine" not in result:
        console.print("mining is disabled in this profile: nothing to do")
        return
    stats = result["mine"]["stats"]
    console.print(
        f"{stats['rows_mined']} rows mined, dropped {stats['dropped_examples']} → {result['mine']['output']}"
    )


@app.command(rich_help_panel="Pipeline")
def train(
    stage: Annotated[str, typer.Option(help="pretrain or finetune")] = "pretrain",
    seed: Annotated[
        list[int] | None, typer.Option(help="fine-tune seed (repeatable; default: the profile's soup seeds)")
    ] = None,
    profile: ProfileOpt = "demo",
    run_id: RunIdOpt = "demo",
    runs_dir: RunsDirOpt = None,
) -> None:
    """Train one stage; fine-tuning starts from ``checkpoints/pretrain`` on ``data/mined`` (``kalm mine``)."""
    if stage not in ("pretrain", "finetune"):
        fail(f"unknown stage {stage!r}: use pretrain or finetune")
    seeds = seed if stage == "finetune" and seed else None
    trains = _train_flow(profile, run_id, runs_dir, stages=[stage], seeds=seeds)
    for name, summary in trains.items():
        console.print(f"{name}: final loss {summary['metrics']['final_loss']:.4f} → {summary['checkpoint']}")


@app.command(rich_help_panel="Pipeline")
def soup(run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None, profile: ProfileOpt = "demo") -> None:
    """Average the run's fine-tuned checkpoints into ``checkpoints/soup``."""
    from flows.soup import soup as soup_flow

    _check_inputs(profile, run_id, runs_dir)
    summary = run_flow(soup_flow, profile=profile, run_id=run_id, runs_dir=runs_dir_param(runs_dir))
    console.print(f"soup of {len(summary['ingredients'])} checkpoints → {summary['checkpoint']}")


@app.command(rich_help_panel="Pipeline")
def report(run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None, profile: ProfileOpt = "demo") -> None:
    """Rewrite ``report.md`` from the run's recorded step summaries."""
    from flows.report import report as report_flow

    _check_inputs(profile, run_id, runs_dir)
    path = run_flow(report_flow, profile=profile, run_id=run_id, runs_dir=runs_dir_param(runs_dir))
    console.print(f"report: {path}")

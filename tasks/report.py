"""Pipeline step: write ``report.md`` for the run (the flow also publishes it as a Prefect artifact)."""

from __future__ import annotations

from pathlib import Path

from kalm.report import render_report
from kalm.run.paths import RunPaths
from tasks._prefect import pipeline_task


def report_step(run: RunPaths, data: dict, trains: dict, evaluation: dict) -> str:
    markdown = render_report(run.root.name, data, trains, evaluation, figures_dir=run.figures)
    run.report.write_text(markdown + "\n", encoding="utf-8")
    return markdown


@pipeline_task("report")
def report_task(run_dir: str, data: dict, trains: dict, evaluation: dict) -> str:
    return report_step(RunPaths(Path(run_dir)), data, trains, evaluation)

"""Pipeline step: write ``report.md`` for the run (the flow also publishes it as a Prefect artifact)."""

from __future__ import annotations

from pathlib import Path

from kalm.hashing import hash_value
from kalm.report import render_report
from kalm.run.paths import RunPaths
from kalm.run.steps import record_step
from tasks._prefect import pipeline_task


def report_step(run: RunPaths, data: dict, trains: dict, evaluation: dict) -> dict:
    """The report and its figures; the summary holds the Markdown (what the artifact publishes)."""
    markdown = render_report(run.root.name, data, trains, evaluation, figures_dir=run.figures)
    run.report.write_text(markdown + "\n", encoding="utf-8")
    summary = {"output": str(run.report), "fingerprint": hash_value(markdown), "markdown": markdown}
    return record_step(run, "report", summary, parents=("evaluate",), outputs=[run.report, run.figures])


@pipeline_task("report")
def report_task(run_dir: str, data: dict, trains: dict, evaluation: dict) -> dict:
    return report_step(RunPaths(Path(run_dir)), data, trains, evaluation)

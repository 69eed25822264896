"""The ``report`` flow: write ``report.md`` from a run's recorded step summaries and publish it."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._common import ProfileName, open_run, run_step
from kalm.run.paths import RunPaths
from kalm.run.steps import read_steps, recorded
from tasks._artifacts import artifact_key, publish_report
from tasks.report import report_task


def report_steps(run: RunPaths, data: dict, trains: dict, evaluation: dict) -> str:
    """The report task, then the report as the run's ``report-<run>`` Markdown artifact, with links to the
    report file and its figures."""
    markdown = run_step(report_task, run, "report", str(run.root), data, trains, evaluation)["markdown"]
    publish_report(
        run.report,
        markdown,
        artifact_key("report", run.root.name),
        f"kalm-pipeline report of run {run.root.name}",
    )
    get_run_logger().info("report: %s", run.report)
    return markdown


@flow(name="report")
def report(run_id: str, profile: ProfileName = "demo", runs_dir: str | None = None) -> str:
    """Rewrite ``runs/<run_id>/report.md`` from the run's recorded steps (data, training, evaluation).

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
    """
    with open_run(profile, run_id, runs_dir) as (_, run):
        steps = read_steps(run)
        data = {name: recorded(run, name, f"the {name} step") for name in ("collect", "dedup", "balance")}
        data |= {name: steps[name] for name in ("decontaminate", "mine") if name in steps}
        trains = {name.removeprefix("train-"): s for name, s in steps.items() if name.startswith("train-")}
        report_steps(run, data, trains, recorded(run, "evaluate", "the evaluate flow"))
        return str(run.report)

"""The ``soup`` flow: average a run's fine-tuned checkpoints."""

from __future__ import annotations

from prefect import flow

from flows._common import ProfileName, open_run, run_step
from kalm.run.paths import RunPaths
from kalm.run.steps import recorded_trains
from tasks.soup import soup_task


def soup_steps(run: RunPaths, trains: dict[str, dict]) -> dict:
    finetunes = [t for name, t in sorted(trains.items()) if name.startswith("finetune")]
    if not finetunes:
        raise FileNotFoundError(f"run {run.root.name!r} has no fine-tuned checkpoints to average")
    return run_step(
        soup_task,
        run,
        "soup",
        str(run.root),
        [t["checkpoint"] for t in finetunes],
        [t["fingerprint"] for t in finetunes],
    )


@flow(name="soup")
def soup(run_id: str, profile: ProfileName = "demo", runs_dir: str | None = None) -> dict:
    """Uniformly average the ``finetune-seed*`` checkpoints of ``runs/<run_id>`` into ``checkpoints/soup``.

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder; re-using it resumes and reuses cached steps.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
    """
    with open_run(profile, run_id, runs_dir) as (_, run):
        return soup_steps(run, recorded_trains(run))

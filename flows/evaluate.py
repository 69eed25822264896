"""The ``evaluate`` flow: score a run's checkpoints with mteb on the profile's evaluation tasks."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows._common import in_run, recorded, recorded_trains, resolve
from kalm.hashing import hash_directory
from kalm.profile import Profile
from kalm.rundir import RunPaths
from tasks.evaluate import evaluate_task


def evaluate_steps(profile: Profile, run: RunPaths, trains: dict[str, dict], soup: dict | None) -> dict:
    wanted = set(profile.evaluate.models)
    candidates = dict(trains) | ({"soup": soup} if soup else {})
    base = profile.train.model.base
    if "base" in wanted and base:
        candidates["base"] = {"checkpoint": base, "fingerprint": hash_directory(Path(base))}
    chosen = {name: step for name, step in candidates.items() if name.split("-")[0] in wanted}
    return in_run(evaluate_task, run)(
        profile.model_dump(mode="json"),
        str(run.root),
        {name: step["checkpoint"] for name, step in chosen.items()},
        {name: step["fingerprint"] for name, step in chosen.items()},
    )


@flow(name="evaluate")
def evaluate(profile: str = "demo", run_id: str = "demo", runs_dir: str | None = None) -> dict:
    """Score the checkpoints of ``runs/<run_id>`` (pre-train, fine-tunes, soup) on the profile's tasks.

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder; re-using it resumes and reuses cached steps.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
    """
    resolved, run = resolve(profile, run_id, runs_dir)
    return evaluate_steps(resolved, run, recorded_trains(run), recorded(run, "soup", "soup"))

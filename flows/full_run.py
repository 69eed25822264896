"""The ``full-run`` flow: build data (collect, dedup, decontaminate, balance) → pre-train → mine → fine-tune
(one run per soup seed) → soup → evaluate → report."""

from __future__ import annotations

from prefect import flow

from flows._common import ProfileName, open_run
from flows.build_data import build_data_steps
from flows.evaluate import evaluate_steps
from flows.report import report_steps
from flows.soup import soup_steps
from flows.train import train_steps


def publish_plan(profile, run) -> None:
    """The run's plan (``kalm plan``) as its first artifact; a plan that cannot be made is a warning, not a stop."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact

    from kalm.run.plan import plan_markdown, plan_run
    from kalm.run.rates import default_rates, load_rates

    try:
        markdown = plan_markdown(plan_run(profile, run, load_rates(default_rates(profile))))
    except (ValueError, OSError, KeyError) as error:
        get_run_logger().warning("no plan for this run: %s", error)
        return
    key = f"plan-{run.root.name}".lower().replace("_", "-")
    create_markdown_artifact(markdown=markdown, key=key, description=f"plan of run {run.root.name}")


@flow(name="full-run")
def full_run(
    profile: ProfileName = "demo",
    run_id: str | None = None,
    runs_dir: str | None = None,
    catalog: str | None = None,
    base_model: str | None = None,
    ray_address: str | None = None,
) -> dict:
    """Run the whole pipeline for a profile into ``runs/<run_id>``; completed steps are cached.

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder; re-using it resumes and reuses cached steps;
            empty: a fresh one, `<profile>-<UTC time>-<flow run name>`.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
        catalog: catalog YAML to collect instead of the profile's.
        base_model: local path of a pretrained backbone instead of the profile's tiny model.
        ray_address: Ray cluster to train on (`auto`, `ray://host:port`); empty = a local Ray.
    """
    with open_run(profile, run_id, runs_dir, catalog, base_model, ray_address) as (resolved, run):
        publish_plan(resolved, run)
        data = build_data_steps(resolved, run)
        trains, mined = train_steps(resolved, run, data["balance"]["fingerprint"])
        if mined is not None:
            data = {**data, "mine": mined}
        soup = soup_steps(run, trains)
        evaluation = evaluate_steps(resolved, run, trains, soup)
        report_steps(run, data, trains, evaluation)
        return {"run_dir": str(run.root), "report": str(run.report), "evaluation": evaluation}

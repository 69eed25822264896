"""The ``full-run`` flow: build data → pre-train → fine-tune (one run per soup seed) → soup → evaluate → report."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows._common import in_run, resolve
from flows.build_data import build_data_steps
from tasks.evaluate import evaluate_task
from tasks.report import report_task
from tasks.soup import soup_task
from tasks.train import checkpoint_name, train_task


@flow(name="full-run")
def full_run(profile: str = "demo", run_id: str = "demo", runs_dir: str | None = None) -> dict:
    """Run the whole pipeline for a profile into ``runs/<run_id>``; completed steps are cached."""
    resolved, run = resolve(profile, run_id, runs_dir)
    collected, deduped, balanced = build_data_steps(resolved, run)
    profile_json = resolved.model_dump(mode="json")
    train = in_run(train_task, run)
    pretrain = train(profile_json, str(run.root), "pretrain", None, balanced["fingerprint"])
    trains = {"pretrain": pretrain}
    for seed in resolved.train.soup_seeds:
        trains[checkpoint_name("finetune", seed)] = train(
            profile_json,
            str(run.root),
            "finetune",
            seed,
            balanced["fingerprint"],
            init_from=pretrain["checkpoint"],
            init_fingerprint=pretrain["fingerprint"],
        )
    finetunes = [t for name, t in trains.items() if name.startswith("finetune")]
    soup = in_run(soup_task, run)(
        str(run.root), [t["checkpoint"] for t in finetunes], [t["fingerprint"] for t in finetunes]
    )
    wanted = set(resolved.evaluate.models)
    models = {name: t["checkpoint"] for name, t in trains.items() if name.split("-")[0] in wanted}
    if "soup" in wanted:
        models["soup"] = soup["checkpoint"]
    fingerprints = {name: t["fingerprint"] for name, t in trains.items()} | {"soup": soup["fingerprint"]}
    evaluation = in_run(evaluate_task, run)(
        profile_json, str(run.root), models, {n: fingerprints[n] for n in models}
    )
    markdown = in_run(report_task, run)(str(run.root), collected, deduped, balanced, trains, evaluation)
    create_markdown_artifact(
        markdown=markdown,
        key=f"report-{run.root.name}".lower().replace("_", "-"),
        description=f"kalm-pipeline report for run {run.root.name}",
    )
    get_run_logger().info("report: %s", run.report)
    return {"run_dir": str(run.root), "report": str(run.report), "evaluation": evaluation}

"""The ``train`` flow: pre-train, mine hard negatives, fine-tune once per soup seed, on a run's balanced data.

Any subset of the stages can run (``kalm train --stage finetune --seed 0`` is this flow with one stage and
one seed); a stage that is not asked for but feeds one that is must already be recorded in the run.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows._common import ProfileName, open_run, run_step
from kalm.hashing import hash_directory
from kalm.run.paths import RunPaths, checkpoint_name
from kalm.run.profile import Profile
from kalm.run.steps import recorded
from tasks.mine import mine_task
from tasks.train import train_task

TRAIN_STAGES = ("pretrain", "mine", "finetune")


def train_steps(
    profile: Profile,
    run: RunPaths,
    data_fingerprint: str,
    stages: list[str] | None = None,
    seeds: list[int] | None = None,
) -> tuple[dict[str, dict], dict | None]:
    """Pre-train (unless the profile has no pre-training stage), mine hard negatives with the pre-trained
    model — or with the pretrained ``model.base`` without pre-training — unless disabled, fine-tune per seed
    (default: the profile's soup seeds).

    Returns the training summaries by checkpoint name, and the mining summary (None when it did not run).
    """
    wanted = set(stages or TRAIN_STAGES)
    unknown = sorted(wanted - set(TRAIN_STAGES))
    if unknown:
        raise ValueError(f"unknown training stage(s) {unknown}: choose from {', '.join(TRAIN_STAGES)}")
    profile_json = profile.model_dump(mode="json")
    trains: dict[str, dict] = {}
    pretrain = None
    if profile.train.pretrain is not None and "pretrain" in wanted:
        pretrain = trains["pretrain"] = run_step(
            train_task, run, "train-pretrain", profile_json, str(run.root), "pretrain", None, data_fingerprint
        )
    elif profile.train.pretrain is not None and wanted & {"mine", "finetune"}:
        pretrain = recorded(run, "train-pretrain", "the pretrain stage")
    init_from, init_fingerprint = (
        (pretrain["checkpoint"], pretrain["fingerprint"]) if pretrain else (None, None)
    )
    finetune_data, finetune_fingerprint, mined = None, data_fingerprint, None
    if profile.mining.enabled and wanted & {"mine", "finetune"}:
        miner = init_from or str(profile.train.model.base)
        if "mine" in wanted:
            mined = run_step(
                mine_task,
                run,
                "mine",
                profile.mining.model_dump(mode="json"),
                str(run.root),
                miner,
                data_fingerprint,
                init_fingerprint or hash_directory(Path(miner)),
            )
        mining = mined or recorded(run, "mine", "the mine stage")
        finetune_data, finetune_fingerprint = mining["output"], mining["fingerprint"]
    if "finetune" in wanted:
        for seed in profile.train.soup_seeds if seeds is None else seeds:
            name = checkpoint_name("finetune", seed)
            trains[name] = run_step(
                train_task,
                run,
                f"train-{name}",
                profile_json,
                str(run.root),
                "finetune",
                seed,
                finetune_fingerprint,
                init_from=init_from,
                init_fingerprint=init_fingerprint,
                data_dir=finetune_data,
            )
    return trains, mined


@flow(name="train")
def train(
    run_id: str,
    profile: ProfileName = "demo",
    runs_dir: str | None = None,
    base_model: str | None = None,
    ray_address: str | None = None,
    stages: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict:
    """Train the stages of a profile on ``runs/<run_id>/data/balanced`` (made by the build-data flow).

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder; re-using it resumes and reuses cached steps.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
        base_model: local path of a pretrained backbone instead of the profile's tiny model.
        ray_address: Ray cluster to train on (`auto`, `ray://host:port`); empty = a local Ray.
        stages: only these of pretrain, mine, finetune (default: all).
        seeds: fine-tune only these seeds (default: the profile's soup seeds).
    """
    with open_run(profile, run_id, runs_dir, base_model=base_model, ray_address=ray_address) as (
        resolved,
        run,
    ):
        balanced = recorded(run, "balance", "the build-data flow")
        trains, mined = train_steps(resolved, run, balanced["fingerprint"], stages, seeds)
        return trains | ({"mine": mined} if mined else {})

"""The ``train`` flow: pre-train, then fine-tune once per soup seed, on a run's balanced data."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows._common import in_run, recorded, resolve
from kalm.hashing import hash_directory
from kalm.profile import Profile
from kalm.rundir import RunPaths
from tasks.mine import mine_task
from tasks.train import checkpoint_name, train_task


def train_steps(
    profile: Profile, run: RunPaths, data_fingerprint: str
) -> tuple[dict[str, dict], dict | None]:
    """Pre-train (unless the profile has no pre-training stage), mine hard negatives with the pre-trained
    model — or with the pretrained ``model.base`` without pre-training — unless disabled, fine-tune per soup seed.

    Returns the training summaries by checkpoint name, and the mining summary (None without mining).
    """
    profile_json = profile.model_dump(mode="json")
    train = in_run(train_task, run)
    trains: dict[str, dict] = {}
    init_from, init_fingerprint = None, None
    if profile.train.pretrain is not None:
        pretrain = train(profile_json, str(run.root), "pretrain", None, data_fingerprint)
        trains["pretrain"] = pretrain
        init_from, init_fingerprint = pretrain["checkpoint"], pretrain["fingerprint"]
    finetune_data, finetune_fingerprint, mined = None, data_fingerprint, None
    if profile.mining.enabled:
        miner = init_from or str(profile.train.model.base)
        mined = in_run(mine_task, run)(
            profile.mining.model_dump(mode="json"),
            str(run.root),
            miner,
            data_fingerprint,
            init_fingerprint or hash_directory(Path(miner)),
        )
        finetune_data, finetune_fingerprint = mined["output"], mined["fingerprint"]
    for seed in profile.train.soup_seeds:
        trains[checkpoint_name("finetune", seed)] = train(
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
    profile: str = "demo",
    run_id: str = "demo",
    runs_dir: str | None = None,
    base_model: str | None = None,
    ray_address: str | None = None,
) -> dict:
    """Train every stage of a profile on ``runs/<run_id>/data/balanced`` (made by the build-data flow).

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder; re-using it resumes and reuses cached steps.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
        base_model: local path of a pretrained backbone instead of the profile's tiny model.
        ray_address: Ray cluster to train on (`auto`, `ray://host:port`); empty = a local Ray.
    """
    resolved, run = resolve(profile, run_id, runs_dir, base_model=base_model, ray_address=ray_address)
    balanced = recorded(run, "balance", "build-data")
    trains, _ = train_steps(resolved, run, balanced["fingerprint"])
    return trains

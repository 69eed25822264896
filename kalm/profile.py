"""A profile: everything one pipeline run needs, as one pydantic model loaded from ``configs/<name>.yaml``."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kalm.balance import BalanceConfig
from kalm.dedup import DecontaminationConfig, DedupConfig
from kalm.mining.select import MiningConfig
from kalm.settings import PROJECT_ROOT
from training.config import TrainConfig

PROFILES_DIR = PROJECT_ROOT / "configs"


class ProfileError(ValueError):
    pass


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks_dir: str | None = Field(default=None, description="eval tasks folder; None uses the demo tasks")
    tasks: list[str] | None = None
    batch_size: int = 32
    models: list[str] = Field(
        default=["pretrain", "finetune", "soup"],
        description="which checkpoints to score: base (the pretrained train.model.base), pretrain, "
        "finetune (every seed), soup",
    )
    use_instructions: bool = Field(
        default=True, description="KaLM instructions on queries; False for models never trained with them"
    )
    embedding_cache: bool = Field(
        default=True, description="reuse document embeddings from <state dir>/embeddings/eval"
    )
    shard_above: int | None = Field(
        default=None, gt=0, description="encode calls of more texts than this go to Ray tasks; None = never"
    )
    shards: int = Field(default=2, ge=1, description="Ray tasks per sharded encode call")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    catalog: str
    demo_data: bool = Field(default=False, description="generate the project's demo sources and eval tasks")
    dedup: DedupConfig = DedupConfig()
    decontaminate: DecontaminationConfig = Field(
        default=DecontaminationConfig(), description="tasks_dir unset: the profile's evaluation tasks"
    )
    balance: BalanceConfig = BalanceConfig()
    train: TrainConfig
    mining: MiningConfig = Field(default=MiningConfig(), description="hard negatives for the fine-tune stage")
    evaluate: EvalConfig = EvalConfig()
    launcher: str = Field(default="ray", pattern="^(ray|local)$")
    ray_address: str | None = None

    def catalog_path(self) -> Path:
        path = Path(self.catalog)
        return path if path.is_absolute() else PROJECT_ROOT / path


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
        raise ProfileError(f"profile {name_or_path!r} not found (known: {known})")
    try:
        return Profile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ProfileError(f"{path}: field {field!r}: {first['msg']}") from None

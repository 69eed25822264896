"""A profile: everything one pipeline run needs, as one pydantic model loaded from ``configs/<name>.yaml``.

The training stages are written as changes to the paper's recipes (``training/configs/*.yaml``, merged by
:func:`training.config.apply_recipes`), so a recipe value is changed in one place. The run-dependent
answers a stage needs (which catalog, which evaluation tasks, which Ray) are methods here, so the flows,
the steps and the CLI ask the profile instead of deciding again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kalm.balance import BalanceConfig
from kalm.dedup import DecontaminationConfig, DedupConfig
from kalm.evaluation.selection import TaskRequest
from kalm.mining.select import MiningConfig
from kalm.run.paths import RunPaths
from kalm.settings import PROJECT_ROOT, get_settings
from training.config import TrainConfig, apply_recipes, named_yaml
from training.job import TrainJob

if TYPE_CHECKING:
    from data_catalog.catalog import ResolvedCatalog
    from kalm.evaluation import RaySharding

PROFILES_DIR = PROJECT_ROOT / "configs"
PACKAGED_PREFIX = "packaged:"


class ProfileError(ValueError):
    pass


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks_dir: str | None = Field(default=None, description="eval tasks folder; None uses the demo tasks")
    tasks: list[str] | None = Field(default=None, description="task names of tasks_dir; None = all of them")
    benchmarks: list[str] = Field(
        default_factory=list,
        description="official mteb benchmarks scored besides the local tasks, e.g. 'MTEB(eng, v1)' (their data "
        "comes from the hub; decontamination reads their test texts too)",
    )
    batch_size: int = Field(default=32, description="encoding batch size")
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
    name: str = Field(description="the profile's name (its file name in configs/)")
    catalog: str = Field(description="catalog YAML, relative to the project or absolute")
    demo_data: bool = Field(default=False, description="generate the project's demo sources and eval tasks")
    languages: list[str] | None = Field(
        default=None, description="collect only the catalog's sources whose languages are all in this list"
    )
    include_disabled_sources: bool = Field(
        default=False,
        description="also collect sources the catalog marks enabled: false (e.g. ones that read an "
        "evaluation split: check decontamination covers it)",
    )
    dedup: DedupConfig = DedupConfig()
    decontaminate: DecontaminationConfig = Field(
        default=DecontaminationConfig(), description="tasks_dir unset: the profile's evaluation tasks"
    )
    balance: BalanceConfig = BalanceConfig()
    train: TrainConfig = Field(description="stages as changes to the recipes in training/configs/")
    mining: MiningConfig = Field(default=MiningConfig(), description="hard negatives for the fine-tune stage")
    evaluate: EvalConfig = EvalConfig()
    launcher: str = Field(
        default="ray", pattern="^(ray|local)$", description="ray: TorchTrainer; local: in-process"
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster; None: KALM_RAY_ADDRESS, else local"
    )

    @field_validator("train", mode="before")
    @classmethod
    def _recipes(cls, value: Any) -> Any:
        return apply_recipes(value) if isinstance(value, dict) else value

    def with_overrides(
        self, catalog: str | None = None, base_model: str | None = None, ray_address: str | None = None
    ) -> Profile:
        """The profile with a flow's or a command's overrides, and the Ray address resolved.

        A catalog override collects that catalog's own files (no demo data is generated for it). The Ray
        address is the override, else the profile's, else ``KALM_RAY_ADDRESS``; None means a local Ray; it is
        also dedup's and decontamination's when they name none (used with their ``use_ray``). A
        ``packaged:`` backbone becomes the local folder its package ships (:func:`resolve_backbone`).
        """
        address = ray_address or self.ray_address or get_settings().ray_address
        updates: dict[str, Any] = {"ray_address": address}
        for step in (
            "dedup",
            "decontaminate",
        ):  # their Ray runs go to the profile's cluster unless they name one
            config = getattr(self, step)
            if config.ray_address is None and address:
                updates[step] = config.model_copy(update={"ray_address": address})
        if catalog:
            updates |= {"catalog": catalog, "demo_data": False}
        base = base_model or self.train.model.base
        if base:
            model = self.train.model.model_copy(update={"base": resolve_backbone(base)})
            updates["train"] = self.train.model_copy(update={"model": model})
        return self.model_copy(update=updates)

    def catalog_path(self) -> Path:
        return project_path(self.catalog)

    def resolve_catalog(self, run: RunPaths) -> ResolvedCatalog:
        """The catalog with its sources' paths resolved (against the run's generated ``raw/`` for demo data),
        limited to the profile's ``languages`` and, unless ``include_disabled_sources``, to enabled sources."""
        from data_catalog.catalog import load_catalog

        resolved = load_catalog(
            self.catalog_path(),
            base_dir=run.raw if self.demo_data else None,
            include_disabled=self.include_disabled_sources,
        )
        if self.languages is None:
            return resolved
        wanted = set(self.languages)
        sources = [s for s in resolved.catalog.sources if set(s.languages) <= wanted]
        return resolved.model_copy(
            update={"catalog": resolved.catalog.model_copy(update={"sources": sources})}
        )

    def eval_tasks_dir(self, run: RunPaths) -> Path | None:
        """Where the profile's local evaluation tasks live (the run's generated ones for demo data); None for
        a profile scored on official benchmarks only."""
        if self.evaluate.tasks_dir:
            return project_path(self.evaluate.tasks_dir)
        if self.demo_data:
            return run.demo_eval_tasks
        if self.evaluate.benchmarks:
            return None
        raise ProfileError(
            f"profile {self.name!r}: evaluate.tasks_dir or evaluate.benchmarks is required without demo_data"
        )

    def decontamination_tasks_dir(self, run: RunPaths) -> Path | None:
        """The local tasks training rows are checked against: ``decontaminate.tasks_dir``, else the eval tasks."""
        if self.decontaminate.tasks_dir:
            return project_path(self.decontaminate.tasks_dir)
        return self.eval_tasks_dir(run)

    def evaluation_request(self, run: RunPaths) -> TaskRequest:
        """What a run's checkpoints are scored on: the local tasks (``evaluate.tasks`` of them) and the
        official benchmarks."""
        local = self.eval_tasks_dir(run)
        names = self.evaluate.tasks if local is not None else None
        return TaskRequest(
            tasks_dir=str(local) if local else None, names=names, benchmarks=list(self.evaluate.benchmarks)
        )

    def task_request(
        self,
        run: RunPaths,
        tasks_dir: str | None = None,
        tasks: list[str] | None = None,
        benchmarks: list[str] | None = None,
        one_model: bool = False,
    ) -> TaskRequest:
        """What ``kalm evaluate`` / the evaluate flow scores, from its options and this profile's defaults.

        With neither ``tasks`` nor ``benchmarks`` the profile's tasks folder is used (all of its tasks for one
        outside model, the profile's ``evaluate.tasks`` for the run's checkpoints); with ``tasks`` the
        profile's folder is consulted for local names when it exists; with only ``benchmarks`` no local task
        runs unless ``tasks_dir`` is given.
        """
        names = tasks or None
        if tasks_dir is None and not tasks and not benchmarks:
            default = self.evaluation_request(run)
            return default if not one_model else default.model_copy(update={"names": None})
        elif tasks_dir is None and tasks:
            try:
                default = self.eval_tasks_dir(run)
            except ProfileError:
                default = None
            tasks_dir = str(default) if default is not None and default.is_dir() else None
        return TaskRequest(tasks_dir=tasks_dir, names=names, benchmarks=list(benchmarks or []))

    def training_job(
        self,
        run: RunPaths,
        stage: str,
        seed: int | None = None,
        init_from: Path | None = None,
        data_dir: Path | None = None,
    ) -> TrainJob:
        """What one training stage of this profile is asked to do (nothing runs, nothing is loaded)."""
        stage_config = getattr(self.train, stage)
        if seed is not None:
            stage_config = stage_config.model_copy(update={"seed": seed})
        return TrainJob(
            stage=stage_config,
            model=self.train.model,
            data_dir=str(data_dir or run.balanced),
            init_from=str(init_from) if init_from else None,
            scaling=self.train.scaling,
        )

    def with_evaluation(self, **overrides: Any) -> Profile:
        """The profile with ``evaluate`` settings overridden (None values are ignored)."""
        updates = {key: value for key, value in overrides.items() if value is not None}
        return self.model_copy(update={"evaluate": self.evaluate.model_copy(update=updates)})

    def sharding(self, ray_address: str | None = None) -> RaySharding | None:
        """Ray sharding of big evaluation encode calls (``evaluate.shard_above``), None when off."""
        if self.evaluate.shard_above is None:
            return None
        from kalm.evaluation import RaySharding

        return RaySharding(
            threshold=self.evaluate.shard_above,
            num_shards=self.evaluate.shards,
            ray_address=ray_address or self.ray_address or get_settings().ray_address,
        )


def resolve_backbone(base: str) -> str:
    """``packaged:<name>`` as the local folder of a backbone shipped in a PyPI package
    (:data:`kalm.run.backbones.PACKAGED`); any other value (a local path or a hub id) as it is."""
    if not base.startswith(PACKAGED_PREFIX):
        return base
    from kalm.run.backbones import PACKAGED

    name = base.removeprefix(PACKAGED_PREFIX)
    if name not in PACKAGED:
        raise ProfileError(f"unknown packaged backbone {name!r} (known: {', '.join(sorted(PACKAGED))})")
    return str(PACKAGED[name]())


def project_path(path: str | Path) -> Path:
    """A profile's path: absolute as written, else relative to the project (``../shared/...`` works)."""
    path = Path(path)
    return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()


def load_profile(name_or_path: str) -> Profile:
    try:
        path = named_yaml(name_or_path, PROFILES_DIR, "profile")
    except ValueError as error:
        raise ProfileError(str(error)) from None
    try:
        return Profile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ProfileError(f"{path}: field {field!r}: {first['msg']}") from None

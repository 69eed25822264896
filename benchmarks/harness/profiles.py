"""Quality harness: the real pipeline on real data with a real backbone, plus the paper's ablations.

Why a profile per variant rather than a shortcut: each row of the table is what ``kalm run`` would produce for
that profile (collect ``data_catalog/shared.yaml`` → dedup → decontaminate against the eval tasks → balance →
mine with the base model → fine-tune per soup seed → soup → evaluate), so the numbers describe the pipeline
users run, and every ablation is one switch in that profile. ``benchmarks/quality.py`` is the command line.

The backbone is never pre-trained here (``train.pretrain`` is omitted): all-MiniLM-L6-v2 is already a trained
embedder and SmolLM2 is a trained LM; the harness measures the fine-tune recipe on top of them. The fine-tune
stage is the paper's recipe (``training/configs/finetune.yaml``); a profile here states only what a CPU budget
changes (batch, learning rate, negatives per query, temperature, MRL at the backbone's width).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from kalm.evaluation.task_spec import select_task_specs
from kalm.settings import PROJECT_ROOT

SHARED_CATALOG = PROJECT_ROOT / "data_catalog" / "shared.yaml"
SHARED_EVAL = PROJECT_ROOT.parent / "shared" / "datasets" / "eval"
ABLATIONS = (
    "no-focal",
    "no-mixing",
    "causal",
    "no-soup",
    "no-hard-negatives",
    "no-decontamination",
    "pooling-last",
)
# Rows read off the full recipe's own run instead of a separate one: (row, reference row).
DERIVED_ABLATIONS = {"no-soup": ("finetune-seed0", "soup")}
# Run-level ablations train one seed and compare with this row of the full recipe.
ABLATION_REFERENCE = "finetune-seed0"
DECODER_ONLY = {"causal"}


# The targets per backbone, (mean gain over tasks, largest family drop; None = no floor):
# MiniLM is already a strong embedder, an untrained-for-embeddings decoder should gain a lot.
TARGETS: dict[str, tuple[float, float | None]] = {"minilm": (1.0, 1.0), "smollm2": (10.0, None)}
EVAL_BATCH_SIZE = 64
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "budget": 160,
        "per_source_cap": 40,
        "batch_size": 8,
        "max_length": 64,
        "max_steps": 4,
        "tasks": ["STSBenchmark", "TrecQA"],
    },
    # Small enough for every ablation on 2 CPU cores: 800 rows, 4 of the smaller task families.
    "reduced": {
        "budget": 800,
        "per_source_cap": 200,
        "batch_size": 16,
        "max_length": 64,
        "tasks": ["MSRP", "STSBenchmark", "SciFact", "TrecQA"],
    },
}


class HarnessConfig(BaseModel):
    """The budget of one harness run; :meth:`preset` gives the smaller versions of the same pipeline."""

    backbone: Literal["minilm", "smollm2"] = "minilm"
    budget: int = Field(2500, gt=0, description="fine-tune rows after balancing")
    per_source_cap: int = Field(1000, gt=0)
    batch_size: int = 32
    hard_negatives: int = 3
    max_length: int = 128
    learning_rate: float = 3e-5
    epochs: float = 1.0
    max_steps: int | None = None
    soup_seeds: list[int] = [0, 1]
    tasks: list[str] | None = Field(None, description="eval tasks; None = every English task of eval_dir")
    eval_dir: Path = SHARED_EVAL
    num_workers: int = Field(2, gt=0, description="Ray training workers (one per GPU when gpus > 0)")
    cpus_per_worker: float = 1.0
    gpus: int = Field(0, ge=0, description="0: CPU workers over gloo; N: N GPU workers over NCCL (bf16)")

    @classmethod
    def preset(cls, name: str, backbone: Literal["minilm", "smollm2"] = "minilm") -> HarnessConfig:
        """A named budget from :data:`PRESETS` (``smoke``: CI; ``reduced``: many rows on 2 CPU cores)."""
        return cls(backbone=backbone, **PRESETS[name])

    def eval_tasks(self) -> list[str]:
        return self.tasks or english_tasks(self.eval_dir)

    @property
    def use_instructions(self) -> bool:
        """MiniLM was trained without instructions (scored with them it loses ~14 STS-B points); KaLM uses them."""
        return self.backbone != "minilm"


def english_tasks(eval_dir: Path) -> list[str]:
    """Names of the tasks of an eval folder whose languages are exactly English."""
    return [spec.name for spec in select_task_specs(Path(eval_dir)) if spec.languages == ("eng",)]


def english_catalog(source: Path, out: Path) -> Path:
    """``source`` restricted to English sources, with ``base_dir`` made absolute so it can live elsewhere."""
    raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    raw["base_dir"] = str((Path(source).parent / raw.get("base_dir", ".")).resolve())
    raw["sources"] = [s for s in raw["sources"] if s.get("languages") == ["eng"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return out


def recipe_profile(cfg: HarnessConfig, base_model: Path, catalog: Path, name: str) -> dict[str, Any]:
    """The full KaLM-V2 fine-tune recipe as a profile dict (focal, mixing, MRL, same-task batches, mining)."""
    width = {"minilm": 384, "smollm2": 576}[cfg.backbone]
    tasks = cfg.eval_tasks()
    steps = {"max_steps": cfg.max_steps} if cfg.max_steps else {}
    return {
        "name": name,
        "catalog": str(catalog),
        "dedup": {"threshold": 0.8},
        "decontaminate": {"enabled": True, "tasks_dir": str(cfg.eval_dir)},
        "balance": {
            "per_source_cap": cfg.per_source_cap,
            "alpha": 0.5,
            "total_budget": cfg.budget,
            "seed": 0,
        },
        "mining": {
            # Pools here hold hundreds to a few thousand texts, not millions: the paper's 50-100 window would
            # sit in the tail, so sample ranks 10-50 and keep its top-50 consistency filter.
            "rank_start": 10,
            "rank_end": 50,
            "num_negatives": cfg.hard_negatives,
            "filter_topk": 50,
            "use_instructions": cfg.use_instructions,
        },
        "train": {
            "model": {"base": str(base_model), "max_length": cfg.max_length},
            "finetune": {
                # the recipe's values but for what a CPU budget changes
                "hard_negatives": cfg.hard_negatives,
                "batch_size": cfg.batch_size,
                "learning_rate": cfg.learning_rate,
                "epochs": cfg.epochs,
                **steps,
                "temperature": 0.05,
                "matryoshka": {"dims": [width, width // 2, width // 4], "weights": [1.0, 0.5, 0.25]},
                "use_instructions": cfg.use_instructions,
                "bf16": cfg.gpus > 0,
                "gradient_checkpointing": False,
            },
            "soup_seeds": cfg.soup_seeds,
            "scaling": {
                "num_workers": cfg.gpus or cfg.num_workers,
                "cpus_per_worker": cfg.cpus_per_worker,
                "use_gpu": cfg.gpus > 0,
                "backend": "nccl" if cfg.gpus else "gloo",
                "checkpoint_every_steps": 50,
                # CPU sweeps run several workers per machine: gradient-cached steps keep each within its share
                # of memory (all-MiniLM-L6-v2 ~1.35 GB instead of ~3.8 GB per worker, benchmarks/RESULTS.md).
                "activation_budget_mb": None if cfg.gpus else 256.0,
            },
        },
        "evaluate": {
            "tasks_dir": str(cfg.eval_dir),
            "tasks": tasks,
            "batch_size": EVAL_BATCH_SIZE,
            "models": ["base", "finetune", "soup"],
            "use_instructions": cfg.use_instructions,
        },
    }


def apply_ablation(profile: dict[str, Any], ablation: str, backbone: str) -> dict[str, Any]:
    """The profile with exactly one technique switched off (a deep copy; the input is not changed)."""
    if ablation not in ABLATIONS or ablation in DERIVED_ABLATIONS:
        raise ValueError(f"not a run-level ablation: {ablation!r} (run-level: {run_ablations(backbone)})")
    if ablation in DECODER_ONLY and backbone == "minilm":
        raise ValueError(f"--{ablation} applies to decoder backbones only (MiniLM is an encoder)")
    out = copy.deepcopy(profile)
    out["name"] = f"{profile['name']}-{ablation}"
    finetune, model = out["train"]["finetune"], out["train"]["model"]
    if ablation == "no-focal":
        finetune["focal_gamma"] = 0.0
    elif ablation == "no-mixing":
        finetune["mixing"] = {"enabled": False}
    elif ablation == "causal":
        model["bidirectional"] = False
    elif ablation == "no-hard-negatives":
        out["mining"]["enabled"] = False
        finetune["hard_negatives"] = 0
        finetune["mixing"] = {"enabled": False}
    elif ablation == "no-decontamination":
        out["decontaminate"]["enabled"] = False
    elif ablation == "pooling-last":
        model["pooling"] = "last"
    # One seed, compared with the full recipe's seed-0 fine-tune: the switch's effect without the soup's
    # (that one is the no-soup row), at half the training cost.
    out["train"]["soup_seeds"] = [0]
    out["evaluate"]["models"] = ["finetune"]
    return out


def run_ablations(backbone: str) -> list[str]:
    """Ablations that need their own pipeline run for this backbone."""
    return [
        a
        for a in ABLATIONS
        if a not in DERIVED_ABLATIONS and not (a in DECODER_ONLY and backbone == "minilm")
    ]

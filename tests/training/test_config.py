"""The stage recipe YAMLs (pretrain / finetune) and the demo profile's train section load and validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from training.config import CONFIGS_DIR, StageConfig, StageRecipe, TrainConfig, apply_recipes
from training.losses import PAPER_DIMS, PAPER_WEIGHTS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["pretrain", "finetune"])
def test_stage_recipes_load_with_the_public_defaults(name):
    recipe = StageRecipe.from_yaml(name)
    assert recipe == StageRecipe.from_yaml(CONFIGS_DIR / f"{name}.yaml")
    stage, model = recipe.stage, recipe.model
    assert stage.name == name and stage.data_stage == name
    assert stage.learning_rate == 1e-5 and stage.warmup_ratio == 0.1 and stage.epochs == 1
    assert model.max_length == 512 and model.pooling == "mean"
    assert stage.bf16 and stage.gradient_checkpointing
    assert stage.matryoshka is not None
    assert tuple(stage.matryoshka.dims) == PAPER_DIMS and tuple(stage.matryoshka.weights) == PAPER_WEIGHTS
    assert stage.mask_same_label


def test_pretrain_is_in_batch_only_with_a_large_batch():
    stage = StageRecipe.from_yaml("pretrain").stage
    assert stage.hard_negatives == 0 and not stage.mixing.enabled and stage.focal_gamma == 0
    assert stage.temperature == 0.02
    assert stage.batch_size > StageRecipe.from_yaml("finetune").stage.batch_size


def test_finetune_has_hard_negatives_focal_and_mixing():
    stage = StageRecipe.from_yaml("finetune").stage
    assert 1 + stage.hard_negatives == 8
    assert stage.temperature == 0.01 and stage.focal_gamma == 0.5
    assert stage.mixing.enabled and stage.mixing.k == 2 and stage.mixing.detach
    assert stage.mixing.pair_choice == "hardest"


def test_demo_profile_train_section_fits_the_tiny_width():
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    train = TrainConfig.model_validate(apply_recipes(raw["train"]))
    for stage in (train.pretrain, train.finetune):
        if stage.matryoshka:
            assert max(stage.matryoshka.dims) <= train.model.tiny.hidden_size


def test_a_profile_stage_is_its_recipe_plus_what_it_changes():
    train = TrainConfig.model_validate(
        apply_recipes({"model": {"max_length": 64}, "finetune": {"learning_rate": 2e-5, "mixing": {"k": 3}}})
    )
    recipe = StageRecipe.from_yaml("finetune")
    assert train.finetune.learning_rate == 2e-5 and recipe.stage.learning_rate == 1e-5
    assert (
        train.finetune.mixing.k == 3 and train.finetune.mixing.pair_choice == recipe.stage.mixing.pair_choice
    )
    changed = {"learning_rate", "mixing"}
    assert train.finetune.model_dump(exclude=changed) == recipe.stage.model_dump(exclude=changed)
    assert train.model.max_length == 64 and train.model.base == recipe.model.base
    # a resolved section resolves to itself (profiles travel to the steps as dumped JSON)
    dumped = train.model_dump(mode="json")
    assert TrainConfig.model_validate(apply_recipes(dumped)) == train


def test_recipe_null_starts_from_the_config_defaults_and_unknown_recipes_name_the_known_ones():
    section = {"model": {"base": "/m"}, "finetune": {"recipe": None, "name": "f", "data_stage": "finetune"}}
    train = TrainConfig.model_validate(apply_recipes(section))
    assert train.finetune == StageConfig(name="f", data_stage="finetune")
    with pytest.raises(ValueError, match=r"recipe 'nope' not found \(known: finetune, pretrain\)"):
        apply_recipes({"finetune": {"recipe": "nope"}})


def test_recipes_assuming_different_models_are_refused(tmp_path):
    other = StageRecipe.from_yaml("pretrain").model_dump(mode="json")
    other["model"]["max_length"] = 128
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(other))
    with pytest.raises(ValueError, match="assume different models"):
        apply_recipes({"pretrain": {"recipe": str(path)}, "finetune": {}})


def test_defaults_keep_the_plain_loss():
    stage = StageConfig(name="s", data_stage="finetune")
    assert stage.focal_gamma == 0 and not stage.mixing.enabled and stage.matryoshka is None
    assert stage.homogeneous_ratio == 1.0 and stage.length_bucketing == 0
    assert not stage.bf16 and not stage.gradient_checkpointing


def test_invalid_combinations_fail_at_load():
    with pytest.raises(ValidationError, match="2 hard negatives"):
        StageConfig(name="s", data_stage="finetune", hard_negatives=1, mixing={"enabled": True})
    with pytest.raises(ValidationError, match="weights"):
        StageConfig(name="s", data_stage="finetune", matryoshka={"dims": [64, 32], "weights": [1.0]})
    with pytest.raises(ValidationError, match="distinct and positive"):
        StageConfig(name="s", data_stage="finetune", matryoshka={"dims": [64, 64], "weights": [1.0, 1.0]})
    with pytest.raises(ValidationError, match="homogeneous_ratio"):
        StageConfig(name="s", data_stage="finetune", homogeneous_ratio=1.5)
    with pytest.raises(ValidationError, match="extra"):
        StageConfig(name="s", data_stage="finetune", mixing={"enabled": True, "kk": 2})
    stage = {"name": "p", "data_stage": "pretrain", "matryoshka": {"dims": [896, 64], "weights": [1, 0.1]}}
    with pytest.raises(ValidationError, match="width 64"):
        TrainConfig.model_validate(
            {"pretrain": stage, "finetune": stage | {"name": "f", "data_stage": "finetune"}}
        )

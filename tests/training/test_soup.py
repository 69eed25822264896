"""Model soup: averaged weights equal a hand-computed average; mismatches are named; soup.json records it."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from tests.training.conftest import TINY
from training.backbone import build_tiny_backbone, load_backbone, tiny_qwen2_config
from training.config import ModelConfig
from training.soup import SoupError, average_state_dicts, greedy_soup, make_soup

MODEL = ModelConfig(attn_implementation="eager", tiny=TINY)


def _save_tiny(path, seed: int, intermediate: int | None = None) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    spec = TINY if intermediate is None else TINY.model_copy(update={"intermediate_size": intermediate})
    model = build_tiny_backbone(tiny_qwen2_config(spec, 97, 32, 0), MODEL)
    model.save_pretrained(path)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def ingredients(tmp_path_factory):
    root = tmp_path_factory.mktemp("ingredients")
    states = [_save_tiny(root / f"m{seed}", seed) for seed in (0, 1)]
    return [root / "m0", root / "m1"], states


def _hand_average(states, weights):
    total = sum(weights)
    out = {}
    for name in states[0]:
        value = torch.zeros_like(states[0][name], dtype=torch.float64)
        for state, weight in zip(states, weights, strict=True):
            value = value + state[name].double() * weight / total
        out[name] = value
    return out


def _assert_matches(soup: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]):
    assert set(soup) >= set(expected)
    for name, value in expected.items():
        assert soup[name].dtype == torch.float32, name
        torch.testing.assert_close(soup[name].double(), value, rtol=0, atol=1e-6, msg=name)


def test_ingredients_really_differ(ingredients):
    _, (a, b) = ingredients
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_uniform_soup_is_the_mean(ingredients, tmp_path):
    paths, states = ingredients
    out = make_soup(paths, tmp_path / "soup")
    assert out == tmp_path / "soup"
    soup = load_file(str(out / "model.safetensors"))
    _assert_matches(soup, _hand_average(states, [1.0, 1.0]))
    # The soup folder loads as a backbone whose parameters are the averages.
    model = load_backbone(str(out), MODEL)
    expected = _hand_average(states, [1.0, 1.0])
    for name, value in model.state_dict().items():
        if name in expected:
            torch.testing.assert_close(value.double(), expected[name], rtol=0, atol=1e-6, msg=name)
    assert model.config.is_causal is False
    assert not (tmp_path / "soup.partial").exists()


def test_weighted_soup(ingredients, tmp_path):
    paths, states = ingredients
    out = make_soup(paths, tmp_path / "soup", weights=[1.0, 3.0])
    soup = load_file(str(out / "model.safetensors"))
    _assert_matches(soup, _hand_average(states, [1.0, 3.0]))
    # Explicitly: 0.25 * a + 0.75 * b for one tensor.
    name = next(iter(states[0]))
    torch.testing.assert_close(soup[name], 0.25 * states[0][name] + 0.75 * states[1][name])
    record = json.loads((out / "soup.json").read_text())
    assert record["method"] == "weighted"
    assert [i["weight"] for i in record["ingredients"]] == [1.0, 3.0]


def test_soup_json_records_ingredients(ingredients, tmp_path):
    paths, _ = ingredients
    out = make_soup(paths, tmp_path / "soup")
    record = json.loads((out / "soup.json").read_text())
    assert record["method"] == "uniform"
    assert [i["path"] for i in record["ingredients"]] == [str(p) for p in paths]
    assert [i["weight"] for i in record["ingredients"]] == [1.0, 1.0]
    for entry, path in zip(record["ingredients"], paths, strict=True):
        assert entry["sha256"] == hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    # Everything else of the first ingredient is carried over.
    assert json.loads((out / "config.json").read_text()) == json.loads((paths[0] / "config.json").read_text())


def test_soup_overwrites_previous_output(ingredients, tmp_path):
    paths, states = ingredients
    make_soup(paths, tmp_path / "soup", weights=[1.0, 3.0])
    (tmp_path / "soup" / "stale.txt").write_text("old")
    out = make_soup(paths, tmp_path / "soup")
    assert not (out / "stale.txt").exists()
    _assert_matches(load_file(str(out / "model.safetensors")), _hand_average(states, [1.0, 1.0]))


def test_mismatched_shapes_name_the_parameter(ingredients, tmp_path):
    paths, _ = ingredients
    _save_tiny(tmp_path / "wide", 2, intermediate=TINY.intermediate_size * 2)
    with pytest.raises(SoupError, match=r"mlp\.(gate|up|down)_proj\.weight"):
        make_soup([paths[0], tmp_path / "wide"], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_average_state_dicts_direct():
    a = {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([2.0], dtype=torch.bfloat16)}
    b = {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([4.0], dtype=torch.bfloat16)}
    c = {"w": torch.tensor([5.0, 10.0]), "h": torch.tensor([0.0], dtype=torch.bfloat16)}
    soup = average_state_dicts([a, b, c], [2.0, 1.0, 1.0])
    torch.testing.assert_close(soup["w"], torch.tensor([2.5, 5.0]))
    assert soup["h"].dtype == torch.bfloat16
    assert soup["h"].item() == 2.0


def test_average_state_dicts_errors():
    a = {"x": torch.zeros(2, 3), "y": torch.zeros(1)}
    with pytest.raises(SoupError, match="'x'"):
        average_state_dicts([a, {"x": torch.zeros(3, 2), "y": torch.zeros(1)}], [1, 1])
    with pytest.raises(SoupError, match=r"parameter names .*'(y|z)'"):
        average_state_dicts([a, {"x": torch.zeros(2, 3), "z": torch.zeros(1)}], [1, 1])
    with pytest.raises(SoupError):
        average_state_dicts([a, a], [1.0])
    with pytest.raises(SoupError):
        average_state_dicts([], [])
    with pytest.raises(SoupError):
        average_state_dicts([a, a], [0.0, 0.0])


def test_missing_weights_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SoupError, match=r"model\.safetensors"):
        make_soup([tmp_path / "empty"], tmp_path / "soup")


# -- greedy soup ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def greedy_candidates(tmp_path_factory):
    """Three real tiny checkpoints; the dev target is the mean of the first two, so only they belong in it."""
    root = tmp_path_factory.mktemp("greedy")
    states = [_save_tiny(root / f"c{seed}", seed) for seed in (0, 1, 2)]
    target = {k: (states[0][k].double() + states[1][k].double()) / 2 for k in states[0]}
    return [root / "c0", root / "c1", root / "c2"], states, target


def _distance_scorer(target, calls):
    """A deterministic dev score over the saved weights: minus the squared distance to `target`."""

    def score(path):
        calls.append(path)
        weights = load_file(str(path / "model.safetensors"))
        return -sum(float(((weights[k].double() - v) ** 2).sum()) for k, v in target.items())

    return score


def test_greedy_soup_keeps_only_improving_ingredients(greedy_candidates, tmp_path):
    paths, states, target = greedy_candidates
    calls = []
    out, chosen = greedy_soup(list(reversed(paths)), _distance_scorer(target, calls), tmp_path / "soup")
    assert sorted(chosen) == paths[:2]  # c2 (far from the target) is tried and rejected
    assert len(calls) == 3 + 2  # each candidate once, then one trial per remaining candidate
    _assert_matches(load_file(str(out / "model.safetensors")), _hand_average(states[:2], [1.0, 1.0]))
    record = json.loads((out / "soup.json").read_text())
    assert record["method"] == "greedy"
    assert [i["path"] for i in record["ingredients"]] == [str(p) for p in chosen]
    assert record["candidates"][-1]["path"] == str(paths[2])  # ranked last by its own dev score
    assert [t["accepted"] for t in record["trials"]] == [True, True, False]
    assert record["dev_score"] == pytest.approx(0.0, abs=1e-6)
    assert not (tmp_path / "soup.trial").exists()


def test_greedy_soup_ranks_by_given_scores(greedy_candidates, tmp_path):
    paths, states, target = greedy_candidates
    calls = []
    # stored scores claim c2 is best: it starts the soup, and no addition beats its (stored) score
    given = {paths[0]: -1.0, paths[1]: -2.0, paths[2]: 10.0}
    out, chosen = greedy_soup(
        paths, _distance_scorer(target, calls), tmp_path / "soup", candidate_scores=given
    )
    assert chosen == [paths[2]]
    assert len(calls) == 2 and all(c == tmp_path / "soup.trial" for c in calls)  # trials only
    _assert_matches(load_file(str(out / "model.safetensors")), _hand_average(states[2:], [1.0]))
    assert [c["dev_score"] for c in json.loads((out / "soup.json").read_text())["candidates"]] == [
        10.0,
        -1.0,
        -2.0,
    ]


def test_greedy_soup_rejects_mismatched_shapes_before_scoring(greedy_candidates, tmp_path):
    paths, _, _ = greedy_candidates
    _save_tiny(tmp_path / "wide", 3, intermediate=TINY.intermediate_size * 2)
    calls = []
    with pytest.raises(SoupError, match=r"mlp\.(gate|up|down)_proj\.weight"):
        greedy_soup([paths[0], tmp_path / "wide"], lambda p: calls.append(p) or 0.0, tmp_path / "soup")
    assert calls == [] and not (tmp_path / "soup").exists()

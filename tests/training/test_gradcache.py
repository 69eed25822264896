"""Gradient-cached steps (``training/gradcache.py``): the chunk plan, dropout replayed in the second pass, and
the same gradients, losses and weights as the whole-batch step."""

from __future__ import annotations

import pytest
import torch

from tests.training.conftest import TEXTS, TINY
from tests.training.jobs import small_job
from training import gradcache
from training.backbone import build_tiny_backbone, tiny_qwen2_config
from training.backends import chunk_tokens
from training.config import MatryoshkaConfig, ModelConfig, ScalingConfig, StageConfig
from training.gradcache import cached_backward, plan_chunks, saved_bytes_per_token
from training.loop import build_loss, train_stage
from training.model import EmbeddingModel


def test_plan_chunks_is_longest_first_within_the_budget():
    lengths = [5, 40, 12, 40, 3, 100, 7, 12]
    chunks = plan_chunks(lengths, 80)
    flat = [i for chunk in chunks for i in chunk]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert chunks[0] == [5]  # longer than the budget: a chunk of its own
    assert chunks[1] == [1, 3]  # ties keep index order
    assert all(len(c) * lengths[c[0]] <= 80 for c in chunks[1:])
    assert plan_chunks(lengths, 10_000) == [flat]


def _tiny_model(tokenizer, max_length: int = 48, attention_dropout: float = 0.0) -> EmbeddingModel:
    config = ModelConfig(max_length=max_length, tiny=TINY)
    qwen = tiny_qwen2_config(TINY, len(tokenizer), max_length, tokenizer.pad_token_id)
    qwen.attention_dropout = attention_dropout
    torch.manual_seed(0)
    return EmbeddingModel(build_tiny_backbone(qwen, config), tokenizer, config).train()


def _step_inputs(model: EmbeddingModel, stage: StageConfig, width: int = TINY.hidden_size):
    """4 queries, each with a positive and 2 negatives, from the test texts (varied lengths), and the loss."""
    queries = TEXTS[:4]
    documents = [TEXTS[(i + k) % len(TEXTS)] for i in range(4) for k in (1, 2, 3)]
    batch = model.tokenize(queries + documents)
    loss_fn = build_loss(stage, width)

    def loss_of(embeddings: torch.Tensor) -> torch.Tensor:
        for module in loss_fn.modules():
            if hasattr(module, "manual_seed"):
                module.manual_seed(7)  # the mixer draws the same pairs in every call
        return loss_fn(embeddings[:4], embeddings[4:])

    return batch["input_ids"], batch["attention_mask"], loss_of


STAGE = StageConfig(
    name="t",
    data_stage="finetune",
    hard_negatives=2,
    focal_gamma=0.5,
    temperature=0.05,
    mixing={"enabled": True, "k": 2, "pair_choice": "random"},
    matryoshka={"dims": [TINY.hidden_size, TINY.hidden_size // 2], "weights": [1.0, 0.3]},
)


def test_cached_gradients_equal_the_whole_batch_gradients(tokenizer):
    model = _tiny_model(tokenizer)
    input_ids, attention_mask, loss_of = _step_inputs(model, STAGE)
    whole = loss_of(model(input_ids, attention_mask))
    whole.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    calls = []

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        calls.append(ids.shape)
        return model(ids, mask)

    loss = cached_backward(forward, input_ids, attention_mask, loss_of, budget=2 * input_ids.shape[1])
    assert len(calls) > 2 and len(calls) % 2 == 0  # several chunks, each embedded twice
    assert max(rows * width for rows, width in calls) <= 2 * input_ids.shape[1]
    torch.testing.assert_close(loss, whole.detach(), rtol=1e-5, atol=1e-6)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-5)


def test_the_second_pass_replays_the_first_pass_dropout(tokenizer):
    """With dropout on, each chunk is re-embedded under the RNG state of its first pass: the same masks, so the
    cached gradients belong to the embeddings the loss saw."""
    model = _tiny_model(tokenizer, attention_dropout=0.3)
    input_ids, attention_mask, loss_of = _step_inputs(model, STAGE)
    first, second = [], []

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = model(ids, mask)
        (second if torch.is_grad_enabled() else first).append(out.detach().clone())
        return out

    cached_backward(forward, input_ids, attention_mask, loss_of, budget=2 * input_ids.shape[1])
    assert len(first) == len(second) > 1
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():  # dropout is really on: another draw gives other embeddings
        again = model(input_ids[: first[0].shape[0]], attention_mask[: first[0].shape[0]])
    assert not torch.equal(again, model(input_ids[: first[0].shape[0]], attention_mask[: first[0].shape[0]]))


def test_minilm_cached_gradients_equal_the_whole_batch():
    """The real encoder (right-padded BERT, chunks trimmed to their own longest text), dropout off."""
    from kalm.run.backbones import minilm_path

    path = minilm_path()
    model = EmbeddingModel.load(path, ModelConfig(base=str(path), max_length=64)).eval()
    matryoshka = MatryoshkaConfig(dims=[384, 128], weights=[1.0, 0.5])
    stage = STAGE.model_copy(update={"matryoshka": matryoshka})
    input_ids, attention_mask, loss_of = _step_inputs(model, stage, width=384)
    loss_of(model(input_ids, attention_mask)).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    cached_backward(model, input_ids, attention_mask, loss_of, budget=64)
    for name, grad in expected.items():
        torch.testing.assert_close(model.get_parameter(name).grad, grad, rtol=1e-4, atol=1e-5)


def test_chunk_size_comes_from_the_activation_budget(tokenizer):
    model = _tiny_model(tokenizer)
    per_token = saved_bytes_per_token(model, 48)
    assert per_token > 0
    budget = ScalingConfig(activation_budget_mb=100 * 48 * per_token / 2**20)
    assert chunk_tokens(model, budget, torch.device("cpu")) == pytest.approx(100 * 48, abs=1)
    tiny = ScalingConfig(activation_budget_mb=1e-6)
    assert chunk_tokens(model, tiny, torch.device("cpu")) == 48  # at least one max-length text
    assert chunk_tokens(model, ScalingConfig(activation_budget_mb=None), torch.device("cpu")) is None
    assert chunk_tokens(model, budget, torch.device("meta")) is None  # GPU workers: the whole batch
    model.tokenizer.padding_side = "left"
    try:
        with pytest.raises(ValueError, match="pads on the left"):
            chunk_tokens(model, budget, torch.device("cpu"))
    finally:
        model.tokenizer.padding_side = "right"


def test_measuring_the_budget_leaves_the_rng_alone(tokenizer):
    model = _tiny_model(tokenizer, attention_dropout=0.3)
    torch.manual_seed(3)
    saved_bytes_per_token(model, 48)
    after = torch.rand(4)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(4))


def test_chunked_training_matches_whole_batch_training(demo_data_dir, monkeypatch):
    """The full recipe (mixing, focal, MRL, mixed batches, label masking), in-process: same losses, token counts
    and weights as the whole-batch step, with several chunks per step."""
    plans = []
    real = gradcache.plan_chunks

    def spy(lengths, budget):
        plans.append(real(lengths, budget))
        return plans[-1]

    monkeypatch.setattr(gradcache, "plan_chunks", spy)
    job = small_job(demo_data_dir, steps=4)
    whole = job.model_copy(update={"scaling": ScalingConfig(activation_budget_mb=None)})
    chunked = job.model_copy(update={"scaling": ScalingConfig(activation_budget_mb=0.5)})
    (m_whole, r_whole), (m_chunk, r_chunk) = train_stage(whole), train_stage(chunked)
    assert len(plans) == 4 and min(len(p) for p in plans) > 1
    assert r_chunk.tokens == r_whole.tokens
    assert r_chunk.losses == pytest.approx(r_whole.losses, rel=1e-5)
    # Adam divides by sqrt(v): where a gradient is ~0, float rounding moves a weight by a fraction of lr (1e-3),
    # hence the packed-path test's tolerance.
    for name, value in m_whole.state_dict().items():
        torch.testing.assert_close(m_chunk.state_dict()[name], value, rtol=1e-4, atol=1e-4)

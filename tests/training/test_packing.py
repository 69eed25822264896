"""The packed (padding-free) path computes what the padded path computes: embeddings, InfoNCE loss and every
parameter's gradient (fp32, eager and sdpa; flex forward where it runs on CPU), keeps sequences isolated, and
token-budget micro-batching respects its budget."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModel

from tests.training.conftest import TEXTS
from training.backbone import make_bidirectional, tiny_qwen2_config
from training.config import ModelConfig, TinyBackbone
from training.losses.infonce import InfoNCELoss
from training.model import EmbeddingModel
from training.packing import (
    FLEX_BLOCK,
    dense_block_mask,
    embed_in_rows,
    pack_by_token_budget,
    pack_sequences,
    packed_embed,
    unpad,
)

SPEC = TinyBackbone(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
MAX_LEN = 64
IMPLS = ["eager", "sdpa"]
GROUP = 2  # 2 queries x 2 documents = the 6 TEXTS


def _model(tokenizer, impl: str) -> EmbeddingModel:
    torch.manual_seed(0)
    config = make_bidirectional(tiny_qwen2_config(SPEC, len(tokenizer), MAX_LEN, tokenizer.pad_token_id))
    backbone = AutoModel.from_config(config, attn_implementation=impl)
    return EmbeddingModel(backbone, tokenizer, ModelConfig(max_length=MAX_LEN, tiny=SPEC)).float().train()


def _padded_and_packed(model: EmbeddingModel, pad_to_multiple: int = 1):
    batch = model.tokenize(TEXTS)
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding to test anything"
    packed = pack_sequences(unpad(batch["input_ids"], batch["attention_mask"]), pad_to_multiple)
    return batch, packed


@pytest.mark.parametrize("impl", IMPLS)
def test_packed_embeddings_loss_and_gradients_match_padded(tokenizer, impl):
    padded_model = _model(tokenizer, impl)
    packed_model = copy.deepcopy(padded_model)
    batch, packed = _padded_and_packed(padded_model)
    loss_fn = InfoNCELoss(temperature=0.05, group_size=GROUP, cross_device=False)

    ref = padded_model(batch["input_ids"], batch["attention_mask"])
    emb = packed_embed(packed_model.backbone, packed)
    torch.testing.assert_close(emb, ref, atol=1e-5, rtol=0)

    n_q = len(TEXTS) // (GROUP + 1)
    ref_loss = loss_fn.compute_loss_from_embeddings(ref[:n_q], ref[n_q:])
    loss = loss_fn.compute_loss_from_embeddings(emb[:n_q], emb[n_q:])
    torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=0)

    ref_loss.backward()
    loss.backward()
    ref_grads = dict(padded_model.named_parameters())
    checked = 0
    for name, param in packed_model.named_parameters():
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)
        checked += 1
    assert checked == len(ref_grads) > 0


@pytest.mark.parametrize("impl", IMPLS)
def test_packed_sequences_are_isolated(tokenizer, impl):
    model = _model(tokenizer, impl).eval()
    batch = model.tokenize(TEXTS)
    seqs = unpad(batch["input_ids"], batch["attention_mask"])
    changed = [s.clone() for s in seqs]
    changed[1][0] = (changed[1][0] + 1) % len(tokenizer)
    with torch.no_grad():
        before = packed_embed(model.backbone, pack_sequences(seqs))
        after = packed_embed(model.backbone, pack_sequences(changed))
    assert not torch.allclose(before[1], after[1])
    keep = [i for i in range(len(seqs)) if i != 1]
    torch.testing.assert_close(after[keep], before[keep], atol=1e-6, rtol=0)


@pytest.mark.parametrize("row_tokens", [64, 10_000])
def test_embed_in_rows_splits_by_budget_and_keeps_input_order(tokenizer, row_tokens):
    """Several rows (<= 64 tokens each) or one: same embeddings, in input order, and the same gradients."""
    padded_model = _model(tokenizer, "sdpa")
    packed_model = copy.deepcopy(padded_model)
    batch = padded_model.tokenize(TEXTS)
    seqs = unpad(batch["input_ids"], batch["attention_mask"])
    assert max(map(len, seqs)) <= 64 < sum(map(len, seqs))
    ref = padded_model(batch["input_ids"], batch["attention_mask"])
    emb, slots = embed_in_rows(packed_model.backbone, seqs, row_tokens, device="cpu")
    assert slots == sum(map(len, seqs))
    torch.testing.assert_close(emb, ref, atol=1e-5, rtol=0)
    weights = torch.randn_like(ref)
    (ref * weights).sum().backward()
    (emb * weights).sum().backward()
    ref_grads = dict(padded_model.named_parameters())
    for name, param in packed_model.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)


def test_positions_restart_and_tail_padding_is_its_own_block():
    packed = pack_sequences([[5, 6, 7], [8, 9]], pad_to_multiple=8)
    assert packed.position_ids.tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    assert packed.seq_ids.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert packed.num_real_tokens == 5 and packed.num_slots == 8
    mask = dense_block_mask(packed.seq_ids)[0, 0]
    assert mask[0, :3].all() and not mask[0, 3:].any()
    assert not mask[5:, :5].any() and not mask[:5, 5:].any()
    additive = dense_block_mask(packed.seq_ids, torch.float32)[0, 0]
    assert additive[0, 0] == 0 and additive[0, 4] == torch.finfo(torch.float32).min


def _flex_forward_runs_on_cpu() -> str | None:
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on torch build
        return f"flex_attention unavailable: {exc}"
    return None


@pytest.mark.slow
def test_flex_packed_embeddings_match_padded(tokenizer):
    """Forward only: flex attention compiles on CPU (tens of seconds) but has no CPU backward."""
    reason = _flex_forward_runs_on_cpu()
    if reason:
        pytest.skip(reason)
    ref_model = _model(tokenizer, "sdpa").eval()
    flex_model = _model(tokenizer, "flex_attention").eval()
    flex_model.load_state_dict(ref_model.state_dict())
    batch, packed = _padded_and_packed(ref_model, pad_to_multiple=FLEX_BLOCK)
    assert packed.num_slots % FLEX_BLOCK == 0 and packed.num_slots > packed.num_real_tokens
    with torch.no_grad():
        ref = ref_model(batch["input_ids"], batch["attention_mask"])
        emb = packed_embed(flex_model.backbone, packed)
    torch.testing.assert_close(emb, ref, atol=1e-5, rtol=0)


def test_flex_backward_on_cpu_is_unsupported_in_this_torch():
    """Documents why the gradient equivalence runs on eager/sdpa only: torch's FlexAttention refuses CPU
    backward ("FlexAttention does not support backward on CPU"). If a future torch adds it, this test
    fails and the flex case should join the gradient test."""
    from torch.nn.attention.flex_attention import flex_attention

    q = torch.randn(1, 1, FLEX_BLOCK, 16, requires_grad=True)
    with pytest.raises(NotImplementedError, match="backward on CPU"):
        flex_attention(q, q, q)


@pytest.mark.parametrize("budget", [64, 100, 512])
def test_token_budget_packing_respects_budget_and_covers_everything(budget):
    gen = torch.Generator().manual_seed(0)
    lengths = (8 * (64 / 8) ** torch.rand(300, generator=gen)).long().tolist()
    bins = pack_by_token_budget(lengths, budget)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= budget for b in bins)
    lower_bound = -(-sum(lengths) // budget)
    assert len(bins) <= lower_bound + 2  # first-fit decreasing fills bins well
    assert pack_by_token_budget(lengths, budget) == bins  # deterministic


def test_token_budget_packing_rejects_oversized_items():
    with pytest.raises(ValueError, match="longer than the token budget"):
        pack_by_token_budget([3, 10, 2], 8)
    assert pack_by_token_budget([], 8) == []


@pytest.mark.slow
def test_train_step_benchmark_small_mode_runs(tmp_path):
    """``benchmarks/train_step.py --small`` (cut to one step) reports both variants, the packed one unpadded."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "train_step.jsonl"
    args = ["--small", "--regimes", "160", "--steps", "1", "--warmup", "0", "--queries", "1"]
    cmd = [sys.executable, str(repo / "benchmarks" / "train_step.py"), *args, "--step-tokens", "1024"]
    subprocess.run([*cmd, "--out", str(out)], check=True, cwd=repo, capture_output=True, timeout=300)
    records = {r["variant"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == {"padded", "packed"}, records
    assert records["packed"]["pad_fraction"] == 0.0 < records["padded"]["pad_fraction"]
    assert all(r["real_tokens_per_s"] > 0 for r in records.values())

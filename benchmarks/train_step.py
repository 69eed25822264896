"""One contrastive (InfoNCE) training step: the padded baseline vs the packed, padding-free path, same run.

Both variants train the same random bidirectional Qwen2 encoder on the same stream of groups (1 query + G
documents, log-uniform lengths, random token ids: throughput does not depend on them):

* ``padded``: a fixed number of groups per step, right-padded to the longest sequence, 2D padding mask
  (bidirectional via ``config.is_causal = False``), mean pooling: the usual FlagEmbedding/KaLM recipe
  (with gradient checkpointing on GPU, without which it runs out of memory at this shape).
* ``packed``: groups fill a *token budget* per step (:func:`~training.packing.pack_by_token_budget` splits
  the step into rows of at most ``--row-tokens``), each row one sequence with restarting positions and a
  per-sequence block mask (flex attention on GPU, dense sdpa mask on CPU), segment-sum mean pooling. On GPU
  each row is padded to exactly ``--row-tokens`` so ``torch.compile(dynamic=False)`` compiles once.

Reported per variant and length regime: real tokens/s, MFU (6 · non-embedding params · real tokens / time /
peak; ``mfu_attn`` adds the 12 · layers · d · Σlen² attention FLOPs actually needed), padding fraction and
peak memory. GPU: bf16 autocast, fp32 master weights and loss, fused AdamW, Qwen2-0.5B shape.
``--small``: tiny model on CPU in seconds (numbers are not comparable with the GPU target).

    .venv/bin/python benchmarks/train_step.py --small
    python benchmarks/train_step.py --peak-tflops 790 --out results.jsonl      # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from transformers import AutoModel, PreTrainedModel, Qwen2Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.backbone import make_bidirectional
from training.config import QWEN2_0_5B_SHAPE
from training.losses.infonce import InfoNCELoss
from training.packing import FLEX_BLOCK, embed_in_rows
from training.pooling import pool

# (query lo, query hi, doc lo, doc hi): log-uniform; overall means ≈ 160 and ≈ 514 tokens with 8 docs/query
REGIMES = {160: (8, 64, 32, 512), 512: (16, 128, 64, 2048)}
Group = list[torch.Tensor]


def model_config(small: bool, attn: str) -> Qwen2Config:
    if small:
        cfg = Qwen2Config(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=1000,
            max_position_embeddings=4096,
        )
    else:  # Qwen2-0.5B shape
        cfg = Qwen2Config(
            **QWEN2_0_5B_SHAPE.model_dump(exclude={"pad_vocab_to"}),
            max_position_embeddings=32768,
            rope_theta=1e6,
            tie_word_embeddings=True,
        )
    cfg = make_bidirectional(cfg)
    cfg._attn_implementation = attn
    return cfg


def groups(seed: int, regime: int, docs: int, vocab: int) -> Iterator[Group]:
    qlo, qhi, dlo, dhi = REGIMES[regime]
    gen = torch.Generator().manual_seed(seed)

    def length(lo: int, hi: int) -> int:
        return int(lo * (hi / lo) ** float(torch.rand((), generator=gen)))

    while True:
        lens = [length(qlo, qhi)] + [length(dlo, dhi) for _ in range(docs)]
        yield [torch.randint(3, vocab, (n,), generator=gen) for n in lens]


def take_budget(stream: Iterator[Group], pending: list[Group], budget: int) -> list[Group]:
    """Greedily take whole groups while they fit the step's token budget (at least one)."""
    out: list[Group] = []
    used = 0
    while True:
        group = pending.pop() if pending else next(stream)
        size = sum(len(s) for s in group)
        if out and used + size > budget:
            pending.append(group)
            return out
        out.append(group)
        used += size


def ordered(step: list[Group]) -> list[torch.Tensor]:
    """Queries first, then every group's documents in order: the layout InfoNCELoss expects."""
    return [g[0] for g in step] + [d for g in step for d in g[1:]]


class Stepper:
    def __init__(self, model: PreTrainedModel, args: argparse.Namespace, device: str) -> None:
        self.model, self.args, self.device = model, args, device
        self.cuda = device == "cuda"
        self.loss_fn = InfoNCELoss(temperature=0.02, group_size=args.docs, cross_device=False)
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=self.cuda)
        self.forward: Callable = torch.compile(model, dynamic=False) if args.compile else model

    def finish(self, emb: torch.Tensor, n_queries: int) -> None:
        loss = self.loss_fn.compute_loss_from_embeddings(emb[:n_queries], emb[n_queries:])  # fp32
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.cuda)

    def padded(self, step: list[Group]) -> tuple[int, int, int, int]:
        seqs = ordered(step)
        longest = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), longest, dtype=torch.long)
        mask = torch.zeros(len(seqs), longest, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)], mask[i, : len(s)] = s, 1
        ids, mask = ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
        with self.autocast():
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        self.finish(pool(hidden, mask, "mean"), len(step))
        return sum(len(s) for s in seqs), mask.numel(), sum(len(s) ** 2 for s in seqs), len(seqs)

    def packed(self, step: list[Group]) -> tuple[int, int, int, int]:
        seqs = ordered(step)
        rows = self.args.row_tokens
        flex = self.model.config._attn_implementation == "flex_attention"
        multiple = rows if self.args.compile else FLEX_BLOCK if flex else 1
        with self.autocast():  # pooling inside is fp32 regardless
            emb, slots = embed_in_rows(self.forward, seqs, rows, pad_to_multiple=multiple, device=self.device)
        self.finish(emb, len(step))
        return sum(len(s) for s in seqs), slots, sum(len(s) ** 2 for s in seqs), len(seqs)


def run(variant: str, regime: int, args: argparse.Namespace, device: str) -> dict:
    torch.manual_seed(0)
    attn = "sdpa" if variant == "padded" or device == "cpu" else "flex_attention"
    cfg = model_config(args.small, attn)
    model = AutoModel.from_config(cfg, attn_implementation=attn).to(device).train()
    if variant == "padded" and args.padded_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    args.compile = variant == "packed" and device == "cuda" and not args.no_compile
    stepper = Stepper(model, args, device)
    stream, pending = groups(1, regime, args.docs, cfg.vocab_size), []
    n_groups = args.queries if regime == 160 else max(1, args.queries // 4)
    do_step = stepper.padded if variant == "padded" else stepper.packed
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    totals = [0, 0, 0, 0]  # real tokens, slots, sum of squared lengths, sequences
    t_start = t0 = time.perf_counter()
    for i in range(args.warmup + args.steps):
        if i == args.warmup:  # warm-up (incl. compilation) is excluded from the timing
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            totals = [0, 0, 0, 0]
        if variant == "padded":
            step = [next(stream) for _ in range(n_groups)]
        else:
            step = take_budget(stream, pending, args.step_tokens)
        totals = [a + b for a, b in zip(totals, do_step(step), strict=True)]
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    real, slots, sum_sq, n_seqs = totals
    params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    peak = args.peak_tflops * 1e12
    dense = 6 * params * real
    attn_flops = 12 * cfg.num_hidden_layers * cfg.hidden_size * sum_sq
    return dict(
        variant=variant,
        mean_len_target=regime,
        device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
        attn=attn,
        compiled=args.compile,
        grad_ckpt=variant == "padded" and args.padded_ckpt,
        steps=args.steps,
        step_s=round(dt / args.steps, 4),
        warmup_s=round(t0 - t_start, 1),
        seqs_per_step=n_seqs // args.steps,
        real_tokens_per_step=real // args.steps,
        mean_len=round(real / n_seqs, 1),
        real_tokens_per_s=round(real / dt),
        pad_fraction=round(1 - real / slots, 3),
        mfu=round(dense / dt / peak, 4),
        mfu_attn=round((dense + attn_flops) / dt / peak, 4),
        peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 1) if device == "cuda" else None,
        max_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        non_embedding_params=params,
        peak_tflops=args.peak_tflops,
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="tiny model on CPU, runs in seconds")
    p.add_argument("--regimes", type=int, nargs="+", default=[160, 512], choices=sorted(REGIMES))
    p.add_argument("--variants", nargs="+", default=["padded", "packed"], choices=["padded", "packed"])
    p.add_argument("--queries", type=int, default=None, help="groups per padded step at mean 160 (÷4 at 512)")
    p.add_argument("--docs", type=int, default=8, help="documents per query (1 positive + hard negatives)")
    p.add_argument("--step-tokens", type=int, default=None, help="packed: token budget per optimizer step")
    p.add_argument("--row-tokens", type=int, default=None, help="packed: max tokens per packed row")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="for MFU (GPU default 790: measured H200 bf16)"
    )
    p.add_argument("--no-padded-ckpt", dest="padded_ckpt", action="store_false", default=None)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="append one JSON line per result")
    args = p.parse_args(argv)
    gpu = torch.cuda.is_available() and not args.small
    defaults = dict(queries=32, step_tokens=49152, row_tokens=49152, steps=8, warmup=4, peak_tflops=790.0)
    defaults["padded_ckpt"] = True
    if not gpu:  # tiny model; sdpa's CPU mask is T x T, so a step is split into rows of <= 2048 tokens
        defaults = dict(queries=2, step_tokens=3072, row_tokens=2048, steps=3, warmup=1, peak_tflops=0.2)
        defaults["padded_ckpt"] = False
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.device = "cuda" if gpu else "cpu"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.device == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))
    print(json.dumps(dict(torch=torch.__version__, device=args.device, small=args.small)), flush=True)
    for regime in args.regimes:
        for variant in args.variants:
            try:
                rec = run(variant, regime, args, args.device)
            except Exception as exc:  # one failing variant (e.g. OOM) must not cost the others
                traceback.print_exc(limit=3)
                rec = dict(
                    variant=variant, mean_len_target=regime, error=f"{type(exc).__name__}: {str(exc)[:300]}"
                )
            line = json.dumps(rec)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(line + "\n")
            if args.device == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

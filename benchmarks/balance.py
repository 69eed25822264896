"""Benchmark: ``balance_dataset`` on a generated 10M-row canonical Parquet dataset.

    .venv/bin/python benchmarks/balance.py                 # 10M rows in 10 files (target < 30 s on 2 cores)
    .venv/bin/python benchmarks/balance.py --rows 1000000  # quick

Rows have the canonical schema with only a few columns filled (unique ``id``, 40 ``source``s of Zipf-like
sizes, 8 categories, 2 stages); text columns are short constant strings, so the run measures the balancing
machinery (DuckDB hash order, per-source cap, per-category quotas, ordered rewrite), not text I/O.
Balance config: per-source cap = 5% of the rows, alpha = 0.5, total budget = 40% of the rows per stage.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_catalog.schema import CANONICAL_SCHEMA  # noqa: E402
from kalm.balance import BalanceConfig, balance_dataset  # noqa: E402


def _codes(values: list[str], codes: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values)).cast(pa.string())


def write_dataset(out_dir: Path, rows: int, files: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    per_file = -(-rows // files)
    src_p = 1.0 / np.arange(1, 41) ** 1.2
    src_p /= src_p.sum()
    sources = [f"source_{i:02d}" for i in range(40)]
    categories = ["retrieval", "sts", "classification", "clustering", "reranking", "bitext", "qa", "nli"]
    order = rng.permutation(rows)  # ids are shuffled across files
    for f in range(files):
        lo, hi = f * per_file, min(rows, (f + 1) * per_file)
        n = hi - lo
        src = rng.choice(40, n, p=src_p)
        cols = {
            "id": pa.array([f"r{i:09d}" for i in order[lo:hi].tolist()], pa.string()),
            "source": _codes(sources, src),
            "category": _codes(categories, src % len(categories)),
            "stage": _codes(["pretrain", "finetune"], (src < 30).astype(np.int32)),
            "task_type": _codes(["retrieval"], np.zeros(n, np.int32)),
            "language": _codes(["en", "zh"], (src % 3 == 0).astype(np.int32)),
            "instruction": _codes([""], np.zeros(n, np.int32)),
            "query": _codes(["q"], np.zeros(n, np.int32)),
            "positive": _codes(["p"], np.zeros(n, np.int32)),
            "negatives": pa.ListArray.from_arrays(
                pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string())
            ),
            "label": pa.nulls(n, pa.string()),
        }
        pq.write_table(pa.table(cols, schema=CANONICAL_SCHEMA), out_dir / f"part-{f:05d}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        in_dir, out_dir = Path(tmp) / "in", Path(tmp) / "out"
        in_dir.mkdir()
        t0 = time.perf_counter()
        write_dataset(in_dir, args.rows, args.files, args.seed)
        print(
            f"generated {args.rows:,} rows in {args.files} files [{time.perf_counter() - t0:.1f}s]",
            flush=True,
        )
        cfg = BalanceConfig(
            per_source_cap=args.rows // 20, alpha=0.5, total_budget=int(args.rows * 0.4), seed=1
        )
        c0, w0 = time.process_time(), time.perf_counter()
        stats = balance_dataset(in_dir, out_dir, cfg)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(f"config: {cfg.model_dump(include={'per_source_cap', 'alpha', 'total_budget'})}")
    print("| rows in | rows out | wall s | CPU s | rows/s (wall) |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {stats.rows_in:,} | {stats.rows_out:,} | {wall:.1f} | {cpu:.1f} | {stats.rows_in / wall:,.0f} |"
    )
    for stage, cats in stats.stages.items():
        shares = ", ".join(f"{c} {s.share_before:.2f}->{s.share_after:.2f}" for c, s in cats.items())
        print(f"{stage}: {shares}")


if __name__ == "__main__":
    main()

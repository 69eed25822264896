"""Benchmark: JSONL → canonical Parquet with our collector vs a naive pandas baseline, in the same run.

    .venv/bin/python benchmarks/collect.py                 # 200k rows of ~100 words (~140 MB)
    .venv/bin/python benchmarks/collect.py --rows 20000    # quick
    .venv/bin/python benchmarks/collect.py --big           # ~3 GB file; add --mem-cap-mb 2048 to prove streaming

Each contender runs in its own subprocess so its peak RSS is its own (``os.wait4`` rusage). The baseline is
what one would write without a collector — ``pandas.read_json(lines=True)`` then ``to_parquet`` — which holds
the whole file in memory and does no validation or quarantine; ours streams, validates every row and writes
sharded zstd Parquet plus a manifest. ``--mem-cap-mb`` sets RLIMIT_AS for both children (the baseline is
expected to fail under a cap smaller than the file).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "".join(random.Random(i).choices("abcdefghijklmnopqrstuvwxyz", k=random.Random(-i).randint(2, 10)))
    for i in range(5000)
]


def generate(path: Path, rows: int, words: int, seed: int = 0) -> int:
    """Write ``rows`` JSON lines {id, title, body} with ~``words`` words of body; return bytes written."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(rows):
            title = " ".join(rng.choices(WORDS, k=8))
            body = " ".join(rng.choices(WORDS, k=words))
            handle.write(json.dumps({"id": i, "title": title, "body": body}) + "\n")
    return path.stat().st_size


def run_ours(source: Path, out: Path) -> int:
    import yaml

    from data_catalog.catalog import load_catalog
    from data_catalog.collect import collect_catalog

    catalog = out.parent / "bench_catalog.yaml"
    spec = {
        "name": "bench",
        "stage": "pretrain",
        "category": "title_body",
        "task_type": "retrieval",
        "languages": ["eng"],
        "loader": {"kind": "jsonl", "path": str(source)},
        "fields": {"query": "title", "positive": "body"},
    }
    catalog.write_text(yaml.safe_dump({"version": 1, "sources": [spec]}))
    manifest = collect_catalog(load_catalog(catalog, base_dir="/"), out)
    return manifest.sources["bench"].rows_written


def run_pandas(source: Path, out: Path) -> int:
    import pandas as pd

    frame = pd.read_json(source, lines=True)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "data.parquet", compression="zstd")
    return len(frame)


def _cap(mb: int | None):
    if mb is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))


def measure(which: str, source: Path, out: Path, cap_mb: int | None) -> dict:
    """Run one contender in a child process; wall time, rows and that child's own peak RSS."""
    command = [sys.executable, __file__, "--child", which, "--input", str(source), "--out", str(out)]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, preexec_fn=_cap(cap_mb))
    assert child.stdout is not None
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    rows = int(output.strip() or 0) if child.returncode == 0 else 0
    return {
        "name": which,
        "ok": child.returncode == 0,
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds if rows else 0.0,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--big", action="store_true", help="generate ~3 GB (4.5M rows of ~100 words)")
    parser.add_argument("--mem-cap-mb", type=int, default=None, help="RLIMIT_AS for each contender")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", choices=["ours", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(REPO))
        print(run_ours(args.input, args.out) if args.child == "ours" else run_pandas(args.input, args.out))
        return
    rows = 4_500_000 if args.big else args.rows
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        size = generate(work / "input.jsonl", rows, args.words)
        print(f"generated {rows:,} rows, {size / 1e6:,.0f} MB in {time.perf_counter() - started:.1f}s")
        results = [
            measure(name, work / "input.jsonl", work / name, args.mem_cap_mb) for name in ("ours", "pandas")
        ]
    print("\n| contender | rows | seconds | rows/s | peak RSS (MB) |\n|---|---:|---:|---:|---:|")
    for r in results:
        status = "" if r["ok"] else " (failed)"
        print(
            f"| {r['name']}{status} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} |"
            f" {r['peak_rss_mb']:,.0f} |"
        )
    ours, pandas = results
    if ours["ok"] and pandas["ok"]:
        print(
            f"\nours/pandas: {ours['rows_per_s'] / pandas['rows_per_s']:.2f}x rows/s, "
            f"{ours['peak_rss_mb'] / pandas['peak_rss_mb']:.2f}x peak RSS"
        )


if __name__ == "__main__":
    main()

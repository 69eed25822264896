"""What checking cached outputs costs: the output record every step writes, and the check before a cache hit.

    .venv/bin/python benchmarks/verify_outputs.py runs/demo

For every step recorded in the run: writing its output record (sha256 of every file, what ``record_step``
adds to each step), the default check of a cache hit (``stat``: size and mtime per file) and the full check
(``KALM_VERIFY_OUTPUTS=full``: sha256 of every file). Prints the totals, the bytes covered and, against the
baseline of the same run, the ratios: stat check / full check, and full check / the run's recorded step time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kalm.run.outputs import outputs_path, outputs_problem, outputs_record  # noqa: E402
from kalm.run.paths import RunPaths  # noqa: E402


def main() -> None:
    run = RunPaths(Path(sys.argv[1]).resolve())
    records = {
        p.name.removesuffix(".outputs.json"): json.loads(p.read_text())
        for p in run.steps.glob("*.outputs.json")
    }
    files = sum(len(r["files"]) for r in records.values())
    size = sum(f[0] for r in records.values() for f in r["files"].values())
    timings = {}
    for label, action in (
        (
            "record (sha256 of every output)",
            lambda r: outputs_record(run, [run.root / p for p in r["paths"]]),
        ),
        ("check, stat (default)", lambda r: outputs_problem(run, r, full=False)),
        ("check, full", lambda r: outputs_problem(run, r, full=True)),
    ):
        started = time.perf_counter()
        for record in records.values():
            action(record)
        timings[label] = time.perf_counter() - started
    steps = [
        json.loads((run.steps / f"{name}.json").read_text())
        for name in records
        if (run.steps / f"{name}.json").exists()
    ]
    wall = sum(
        s.get("wall_time_s") or s.get("metrics", {}).get("wall_time_s") or 0
        for s in steps
        if isinstance(s, dict)
    )
    print(f"run {run.root.name}: {len(records)} steps, {files} output files, {size / 1e6:.1f} MB")
    for label, seconds in timings.items():
        print(f"  {label:34s} {seconds * 1000:9.1f} ms")
    print(f"  stat check / full check: {timings['check, stat (default)'] / timings['check, full']:.3f}")
    if wall:
        print(
            f"  full check / recorded step wall time ({wall:.1f} s, training and mining): "
            f"{timings['check, full'] / wall:.4f}"
        )
    assert all(outputs_path(run, name).exists() for name in records)


if __name__ == "__main__":
    main()

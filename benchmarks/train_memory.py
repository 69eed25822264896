"""Peak RSS per Ray CPU training worker and steps/s: the lean step against a baseline, same run, same batches.

Each variant trains the quality harness's fine-tune recipe (focal γ 0.5, hard-negative mixing, MRL, same-source
batches with length bucketing, 3 hard negatives) through the real launcher, ``training.launch.run_with_ray``
(2 CPU workers, 1 thread each, DDP over gloo), on the English sources of ``data_catalog/shared.yaml`` collected
to canonical Parquet (51,640 rows; every worker loads them all, as in the pipeline), for ``--steps`` steps.

Every variant runs in its own driver subprocess with its own local Ray, so nothing is shared between them. This
process samples the memory of that driver's Ray Train worker processes every 0.1 s: the kernel's high-water
mark ``VmHWM`` (exact peak RSS, also between samples) and ``VmRSS``, and their CPU time. steps/s comes from the
workers' step log (``train_steps.jsonl``), first step excluded (warm-up); CPU seconds per step and worker over
the same steps is the cost that other jobs on a shared machine do not move. ``--repeat`` runs the variants
again in reverse order (ABBA…) and reports the median steps/s. The module is long because it is both the parent
(variants, the /proc sampler, the table) and the child entry point every variant's subprocess runs, so the old
tree and this one are measured by the same code.

Variants (``--variants``, the first one is the baseline of the printed ratios):

* ``old``: the training code of ``--baseline-ref`` (default: main before lean CPU training), from
  ``git archive`` into a temporary folder: the whole batch in one autograd graph, DDP, row-wise loading.
* ``whole-batch-glibc``: this tree, ``activation_budget_mb: null``, ``worker_allocator: system`` (whole-batch
  graph, DDP, glibc malloc): what the column-wise row loading alone changed.
* ``whole-batch``: the same with jemalloc workers: what the allocator adds to the whole-batch step.
* ``gradcache-glibc``: gradient-cached chunks within ``activation_budget_mb`` (256 MB) but glibc malloc.
* ``gradcache``: gradient-cached chunks and jemalloc workers: the leanest setting.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.train_memory                     # all-MiniLM-L6-v2, 24 steps
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.train_memory --backbone smollm2  # SmolLM2-135M, batch 8/worker
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.train_memory --variants old whole-batch gradcache --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINE_REF = "d994d9a"  # main before lean CPU training (branch lean-train-2)
CACHE = REPO / ".state" / "bench" / "train_memory"
STATUS_FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")
GRADCACHE_MB = 256.0  # the gradient-cached variants' activation budget (--activation-budget-mb changes it)
# A variant's ScalingConfig settings, explicit so that they do not move with the tree's defaults.
VARIANTS: dict[str, dict[str, Any]] = {
    "old": {},
    "whole-batch-glibc": {"activation_budget_mb": None, "worker_allocator": "system"},
    "whole-batch": {"activation_budget_mb": None, "worker_allocator": "jemalloc"},
    "gradcache-glibc": {"activation_budget_mb": GRADCACHE_MB, "worker_allocator": "system"},
    "gradcache": {"activation_budget_mb": GRADCACHE_MB, "worker_allocator": "jemalloc"},
}
BACKBONES: dict[str, dict[str, Any]] = {
    # The quality harness's budgets: MiniLM full preset, SmolLM2 the reduced one (batch 16, 64 tokens).
    "minilm": {"batch_size": 32, "max_length": 128, "width": 384, "use_instructions": False},
    "smollm2": {"batch_size": 16, "max_length": 64, "width": 576, "use_instructions": True},
}


def english_data() -> Path:
    """The English sources of the shared catalog as canonical Parquet (collected once, ~3 s)."""
    import yaml

    from data_catalog.catalog import load_catalog
    from data_catalog.collect import collect_catalog

    out = CACHE / "data"
    if (out / "done").exists():
        return out
    catalog_path = REPO / "data_catalog" / "shared.yaml"
    raw = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    raw["base_dir"] = str((catalog_path.parent / raw.get("base_dir", ".")).resolve())
    raw["sources"] = [s for s in raw["sources"] if s.get("languages") == ["eng"]]
    CACHE.mkdir(parents=True, exist_ok=True)
    catalog = CACHE / "english.yaml"
    catalog.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    collect_catalog(load_catalog(catalog), out)
    (out / "done").write_text("")
    return out


def job_config(backbone: str, base: Path, data: Path, steps: int, scaling: dict[str, Any]) -> dict[str, Any]:
    """The harness's fine-tune recipe as a ``TrainJob`` dict and its ``ScalingConfig`` dict."""
    spec = BACKBONES[backbone]
    width = spec["width"]
    stage = {
        "name": f"mem-{backbone}",
        "data_stage": "finetune",
        "hard_negatives": 3,
        "batch_size": spec["batch_size"],
        "learning_rate": 3e-5,
        "max_steps": steps,
        "temperature": 0.05,
        "focal_gamma": 0.5,
        "mixing": {"enabled": True, "k": 2},
        "matryoshka": {"dims": [width, width // 2, width // 4], "weights": [1.0, 0.5, 0.25]},
        "homogeneous_ratio": 1.0,
        "length_bucketing": 4,
        "use_instructions": spec["use_instructions"],
    }
    scaling = {
        "num_workers": 2,
        "cpus_per_worker": 1.0,
        "backend": "gloo",
        "checkpoint_every_steps": None,
        "max_failures": 0,
    } | scaling  # a variant's settings; otherwise the tree's defaults (the old tree has no lean fields)
    model = {"base": str(base), "pooling": "mean", "max_length": spec["max_length"]}
    return {"job": {"stage": stage, "model": model, "data_dir": str(data)}, "scaling": scaling}


# ---------------------------------------------------------------------------------------- child (one variant)
def child(spec_path: Path) -> None:
    """Train one variant through ``run_with_ray``; write the step records and metrics next to the spec."""
    from training.config import ScalingConfig
    from training.job import TrainJob
    from training.launch import run_with_ray
    from training.telemetry import STEPS_FILE

    spec = json.loads(spec_path.read_text())
    work = spec_path.parent
    job = TrainJob.model_validate(spec["job"])
    steps_file = work / "ray" / job.stage.name / STEPS_FILE
    seen: list[str] = []
    seen_at: list[float] = []  # when each step's record appeared (±0.2 s), to match the CPU-time samples
    stop = threading.Event()

    def tail() -> None:  # the run's folder is deleted when it succeeds: keep what the log said
        while not stop.wait(0.2):
            if steps_file.exists():
                seen[:] = [line for line in steps_file.read_text().splitlines() if line.strip()]
                seen_at.extend([time.time()] * (len(seen) - len(seen_at)))

    thread = threading.Thread(target=tail, daemon=True)
    thread.start()
    started = time.perf_counter()
    metrics = run_with_ray(job, work / "model", ScalingConfig(**spec["scaling"]), work / "ray")
    wall = time.perf_counter() - started
    stop.set()
    thread.join()
    records = [json.loads(line) for line in seen]
    result = {"records": records, "seen_at": seen_at, "metrics": metrics, "wall_s": wall}
    (work / "result.json").write_text(json.dumps(result))


# --------------------------------------------------------------------------------------- parent (orchestration)
def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` (``/proc/<pid>/stat`` fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_status(pid: int) -> dict[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            out[key] = int(value.split()[0]) // 1024  # kB → MiB
    return out


class WorkerSampler:
    """Samples the Ray Train worker processes under one driver: peak memory per pid, and CPU time over time."""

    def __init__(self, driver_pid: int, interval: float = 0.1) -> None:
        self.driver_pid, self.interval = driver_pid, interval
        self.peaks: dict[int, dict[str, int]] = {}
        self.cpu: dict[int, list[tuple[float, float]]] = {}  # pid → (wall time, CPU seconds)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _workers(self) -> list[int]:
        import psutil

        try:
            children = psutil.Process(self.driver_pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        pids = []
        for proc in children:
            try:
                if "RayTrainWorker" in " ".join(proc.cmdline()):
                    pids.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return pids

    def _run(self) -> None:
        known: list[int] = []
        last_scan = 0.0
        while not self.stop.wait(self.interval):
            if time.monotonic() - last_scan > 2.0:  # a process scan is costly; the worker pids rarely change
                known, last_scan = self._workers(), time.monotonic()
            for pid in known:
                status = read_status(pid)
                if not status or "VmRSS" not in status:  # gone, or a zombie
                    continue
                peak = self.peaks.setdefault(pid, dict.fromkeys(STATUS_FIELDS, 0))
                if status["VmRSS"] >= peak["VmRSS"]:  # the split of the largest RSS sampled
                    peak.update({k: v for k, v in status.items() if k != "VmHWM"})
                peak["VmHWM"] = max(peak["VmHWM"], status["VmHWM"])
                used = cpu_seconds(pid)
                if used is not None:
                    self.cpu.setdefault(pid, []).append((time.time(), used))

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds all workers used between two wall times (the last samples at or before each)."""
        total = 0.0
        for samples in self.cpu.values():
            before = [c for t, c in samples if t <= start]
            until = [c for t, c in samples if t <= end]
            if before and until:
                total += until[-1] - before[-1]
        return total

    def __enter__(self) -> WorkerSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def old_tree(ref: str, into: Path) -> Path:
    """The repository at ``ref`` (tracked files only), for the ``old`` variant's ``PYTHONPATH``."""
    tree = into / f"tree-{ref}"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def run_variant(name: str, config: dict, tree: Path, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True)
    spec = work / "spec.json"
    spec.write_text(json.dumps(config))
    env = os.environ | {
        "PYTHONPATH": str(tree),  # the venv's editable install would import another checkout otherwise
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "KALM_PROGRESS": "0",
    }
    env.setdefault("RAY_memory_usage_threshold", "0.98")  # Ray's OOM killer would stop the baseline
    script = Path(__file__).resolve()
    log = (work / "driver.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--child", str(spec)], cwd=tree, env=env, stdout=log, stderr=log
    )
    with WorkerSampler(proc.pid) as sampler:
        code = proc.wait()
    log.close()
    if code != 0:
        tail = (work / "driver.log").read_text()[-3000:]
        raise RuntimeError(f"variant {name} failed (exit {code}):\n{tail}")
    result = json.loads((work / "result.json").read_text())
    records, seen_at = result["records"], result["seen_at"]
    timed = records[1:]
    seconds = sum(r["seconds"] for r in timed)
    cpu = sampler.cpu_between(seen_at[0], seen_at[-1])
    return {
        "variant": name,
        "workers": sorted(sampler.peaks.values(), key=lambda p: -p["VmHWM"]),
        "steps": len(records),
        "steps_per_s": len(timed) / seconds,
        "tokens_per_s": sum(r["tokens"] for r in timed) / seconds,
        "cpu_s_per_step": cpu / len(sampler.cpu) / len(timed),  # per worker
        "losses": [r["loss"] for r in records],
        "wall_s": result["wall_s"],
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant over its repeats: the highest peak, the median steps/s and CPU seconds per step."""
    return {
        "variant": runs[0]["variant"],
        "peaks": [max(w["VmHWM"] for w in r["workers"]) for r in runs],
        "split": max((w for r in runs for w in r["workers"]), key=lambda w: w["VmRSS"]),
        "steps_per_s": statistics.median(r["steps_per_s"] for r in runs),
        "all_steps_per_s": [r["steps_per_s"] for r in runs],
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
        "cpu_s_per_step": statistics.median(r["cpu_s_per_step"] for r in runs),
    }


def table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    lines = [
        "| variant | peak RSS per worker (MiB) | anon / file, largest sample | steps/s (runs) | tokens/s | "
        f"CPU s/step/worker | peak vs {base['variant']} | steps/s vs {base['variant']} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        runs = ", ".join(f"{x:.4f}" for x in r["all_steps_per_s"])
        lines.append(
            f"| {r['variant']} | {max(r['peaks']):,} | {r['split']['RssAnon']:,} / {r['split']['RssFile']:,} | "
            f"{r['steps_per_s']:.4f} ({runs}) | {r['tokens_per_s']:,.0f} | {r['cpu_s_per_step']:.2f} | "
            f"{max(r['peaks']) / max(base['peaks']):.2f}× | {r['steps_per_s'] / base['steps_per_s']:.2f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", choices=sorted(BACKBONES), default="minilm")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument(
        "--variants", nargs="+", default=["old", "whole-batch", "gradcache"], choices=list(VARIANTS)
    )
    ap.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the `old` variant")
    ap.add_argument(
        "--activation-budget-mb", type=float, help=f"the gradcache variants' budget (default {GRADCACHE_MB})"
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="run the variants this many times, in alternating order"
    )
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return

    sys.path.insert(0, str(REPO))
    from kalm.run.backbones import minilm_path, smollm2_path

    base = minilm_path() if args.backbone == "minilm" else smollm2_path()
    data = english_data()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.variants}
    with tempfile.TemporaryDirectory(prefix="kalm-train-memory-") as tmp:
        old = old_tree(args.baseline_ref, Path(tmp)) if "old" in args.variants else None
        for repeat in range(args.repeat):
            # ABBA order: a load that drifts during the session (a shared machine) favours no variant.
            order = args.variants if repeat % 2 == 0 else args.variants[::-1]
            for name in order:
                settings = dict(VARIANTS[name])
                if name.startswith("gradcache") and args.activation_budget_mb:
                    settings["activation_budget_mb"] = args.activation_budget_mb
                config = job_config(args.backbone, base, data, args.steps, settings)
                work = Path(tmp) / f"{name}-{repeat}"
                result = run_variant(name, config, old if name == "old" else REPO, work)
                runs[name].append(result)
                print(
                    f"{name} (run {repeat + 1}): worker peaks {[w['VmHWM'] for w in result['workers']]} MiB, "
                    f"{result['steps_per_s']:.4f} steps/s, {result['cpu_s_per_step']:.2f} CPU s/step/worker, "
                    f"losses {[round(x, 4) for x in result['losses'][:4]]}…",
                    flush=True,
                )
    print(
        f"\n{args.backbone}, {args.steps} steps (steps/s without the first), 2 Ray CPU workers over gloo, "
        f"1 thread each, {args.repeat} run(s) per variant (steps/s: median)\n"
    )
    print(table([summarize(runs[name]) for name in args.variants]))
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()

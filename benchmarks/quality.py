"""Quality harness: base vs trained vs soup on the shared eval tasks, and the paper's ablations, in one command.

    .venv/bin/python benchmarks/quality.py                          # MiniLM, full recipe (CPU, ~40 min)
    .venv/bin/python benchmarks/quality.py --ablation no-focal      # plus one ablation row (repeatable)
    .venv/bin/python benchmarks/quality.py --ablation all --record  # every ablation; write RESULTS.md
    .venv/bin/python benchmarks/quality.py --smoke                  # CI-sized: tiny budgets, 2 tasks
    .venv/bin/python benchmarks/quality.py --reduced --ablation all # every ablation at 800 rows, 4 tasks
    .venv/bin/python benchmarks/quality.py --backbone smollm2       # SmolLM2-135M made bidirectional
    .venv/bin/python benchmarks/quality.py --budget 4000 --learning-rate 6e-5 --tag b4k  # a variant, kept apart

Every row is a real ``full-run`` flow (ephemeral Prefect, local Ray, DuckDB, mteb) on a profile written by
:mod:`benchmarks.harness.profiles`; scores go through the results store, so re-running reuses every cached step and score.
Runs live in ``--runs-dir`` (default ``runs/quality``); the table goes to stdout and ``<runs-dir>/<name>.md``,
and with ``--record`` into ``benchmarks/RESULTS.md`` between ``<!-- quality:<name> -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness.profiles import (  # noqa: E402
    ABLATION_REFERENCE,
    ABLATIONS,
    DERIVED_ABLATIONS,
    EVAL_BATCH_SIZE,
    SHARED_CATALOG,
    TARGETS,
    HarnessConfig,
    apply_ablation,
    english_catalog,
    recipe_profile,
    run_ablations,
)
from benchmarks.harness.report import render  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"


def base_checkpoint(cfg: HarnessConfig, cache: Path) -> tuple[Path, Path]:
    """(backbone folder the profile trains from, the same model saved the way training saves checkpoints).

    The base row is scored on the second (mean pooling, bidirectional for a decoder), and the soup with the
    base averages it: re-saving gives it the exact parameter names of the trained checkpoints.
    """
    from transformers import AutoTokenizer

    from kalm.run.backbones import minilm_path, smollm2_path
    from training.backbone import load_backbone
    from training.config import ModelConfig
    from training.model import EmbeddingModel

    raw = minilm_path() if cfg.backbone == "minilm" else smollm2_path()
    st = cache / f"{cfg.backbone}-mean-{cfg.max_length}"  # scored at the trained rows' max_length
    if not (st / "model.safetensors").exists():
        model_cfg = ModelConfig(base=str(raw), pooling="mean", max_length=cfg.max_length)
        EmbeddingModel(
            load_backbone(str(raw), model_cfg), AutoTokenizer.from_pretrained(raw), model_cfg
        ).save(st)
    return raw, st


def run_profile(profile: dict, runs_dir: Path, run_id: str) -> dict:
    """One ``full-run`` flow for ``profile``; returns its evaluation summaries by checkpoint name."""
    import yaml

    from flows.full_run import full_run

    path = runs_dir / f"{run_id}.profile.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    started = time.perf_counter()
    result = full_run(profile=str(path), run_id=run_id, runs_dir=str(runs_dir))
    evaluation = {k: v for k, v in result["evaluation"].items() if isinstance(v, dict) and "scores" in v}
    return {"evaluation": evaluation, "run_dir": result["run_dir"], "wall_s": time.perf_counter() - started}


def score(path: Path, cfg: HarnessConfig, out: Path, name: str) -> dict:
    from kalm.results import evaluate_model

    return evaluate_model(
        path,
        cfg.eval_dir,
        out,
        cfg.eval_tasks(),
        EVAL_BATCH_SIZE,
        name=name,
        use_instructions=cfg.use_instructions,
        stage=name,
    )


def soup_with_base(run_dir: Path, base_st: Path, cfg: HarnessConfig) -> dict:
    """The run's soup averaged 1:1 with the base model ("trained, or its soup with the base")."""
    from training.soup import make_soup

    out = run_dir / "checkpoints" / "soup-with-base"
    if not (out / "soup.json").exists():
        make_soup([run_dir / "checkpoints" / "soup", base_st], out)
    return score(out, cfg, run_dir / "eval" / "soup-with-base", f"{run_dir.name}/soup-with-base")


def data_counts(run_dir: Path) -> dict:
    steps = {p.stem: json.loads(p.read_text()) for p in (run_dir / "steps").glob("*.json")}
    counts = {"collected": sum(steps["collect"]["rows_by_stage"].values())}
    for name in ("dedup", "decontaminate", "balance", "mine"):
        stats = steps.get(name, {}).get("stats", {})
        counts[f"after {name}"] = stats.get("rows_out")
    counts["mined rows"] = steps.get("mine", {}).get("stats", {}).get("rows_mined")
    return counts


def record(name: str, markdown: str) -> None:
    text = RESULTS.read_text(encoding="utf-8")
    start, end = f"<!-- quality:{name} -->", f"<!-- /quality:{name} -->"
    block = f"{start}\n{markdown}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text, encoding="utf-8")


def _without_runs_dir(argv: list[str]) -> list[str]:
    """The command line minus ``--runs-dir`` (where runs are stored changes no score; keeps paths out)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--runs-dir":
            skip = True
        elif not arg.startswith("--runs-dir="):
            out.append(arg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", choices=["minilm", "smollm2"], default="minilm")
    ap.add_argument("--smoke", action="store_true", help="tiny budgets and 2 tasks (CI)")
    ap.add_argument("--reduced", action="store_true", help="800 rows, 4 smaller tasks: ablations on CPU")
    ap.add_argument("--ablation", action="append", default=[], choices=[*ABLATIONS, "all"])
    ap.add_argument("--budget", type=int, help="fine-tune rows after balancing")
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--learning-rate", type=float)
    ap.add_argument("--epochs", type=float)
    ap.add_argument("--tasks", nargs="+", help="eval tasks (default: the preset's, else every English task)")
    ap.add_argument("--gpus", type=int, help="train on N GPUs (NCCL, bf16); evaluation and mining use CUDA")
    ap.add_argument("--tag", help="suffix of the run and table name, to keep variants of one preset apart")
    ap.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "quality")
    ap.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = ap.parse_args()

    preset = "smoke" if args.smoke else "reduced" if args.reduced else None
    cfg = HarnessConfig.preset(preset, args.backbone) if preset else HarnessConfig(backbone=args.backbone)
    updates = {
        "budget": args.budget,
        "max_steps": args.max_steps,
        "learning_rate": args.learning_rate,
        "epochs": args.epochs,
        "tasks": args.tasks,
        "gpus": args.gpus,
    }
    cfg = cfg.model_copy(update={k: v for k, v in updates.items() if v is not None})
    ablations = (
        run_ablations(cfg.backbone) + list(DERIVED_ABLATIONS) if "all" in args.ablation else args.ablation
    )
    name = cfg.backbone + (f"-{preset}" if preset else "") + (f"-{args.tag}" if args.tag else "")
    runs_dir = args.runs_dir.resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    train_from, base_st = base_checkpoint(cfg, runs_dir / "_base")
    catalog = english_catalog(SHARED_CATALOG, runs_dir / "shared-eng.yaml")
    profile = recipe_profile(cfg, train_from, catalog, f"quality-{name}")
    profile["evaluate"]["models"] = ["soup"]
    base = score(base_st, cfg, runs_dir / "_base" / f"eval-{cfg.backbone}", f"{cfg.backbone}-base")
    full = run_profile(profile, runs_dir, f"{name}-full")
    run_dir = Path(full["run_dir"])
    seed0 = run_dir / "checkpoints" / ABLATION_REFERENCE
    rows = {
        "base": base,
        ABLATION_REFERENCE: score(seed0, cfg, run_dir / "eval" / ABLATION_REFERENCE, f"{run_dir.name}/seed0"),
        "soup": full["evaluation"]["soup"],
        "soup + base": soup_with_base(run_dir, base_st, cfg),
    }
    ablation_rows: dict[str, tuple[dict, str]] = {}
    for ablation in ablations:
        if ablation in DERIVED_ABLATIONS:
            row, reference = DERIVED_ABLATIONS[ablation]
            ablation_rows[ablation] = (rows[row], reference)
            continue
        variant = apply_ablation(profile, ablation, cfg.backbone)
        evaluation = run_profile(variant, runs_dir, f"{name}-{ablation}")["evaluation"]
        ablation_rows[ablation] = (evaluation[ABLATION_REFERENCE], ABLATION_REFERENCE)

    import torch

    context = {
        "command": "benchmarks/quality.py " + " ".join(_without_runs_dir(sys.argv[1:])),
        # the eval folder relative to the repository: no machine path in a recorded table
        "config": json.loads(cfg.model_dump_json()) | {"eval_dir": os.path.relpath(cfg.eval_dir, REPO)},
        "data": data_counts(run_dir),
        "wall_s": round(time.perf_counter() - started, 1),
        "full_run_wall_s": round(full["wall_s"], 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"python {platform.python_version()}",
    }
    markdown = render(name, rows, ablation_rows, context, TARGETS[cfg.backbone])
    (runs_dir / f"{name}.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    if args.record:
        record(name, markdown)


if __name__ == "__main__":
    main()

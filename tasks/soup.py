"""Pipeline step: uniform parameter average of the fine-tuned checkpoints (``checkpoints/soup``)."""

from __future__ import annotations

import time
from pathlib import Path

from kalm.hashing import hash_file
from kalm.run.paths import RunPaths
from kalm.run.steps import record_step
from tasks._prefect import pipeline_task
from training.soup import WEIGHTS_FILE, make_soup


def soup_step(run: RunPaths, ingredients: list[Path]) -> dict:
    started = time.perf_counter()
    output = make_soup(ingredients, run.checkpoint("soup"))
    return record_step(
        run,
        "soup",
        {
            "checkpoint": str(output),
            "fingerprint": hash_file(output / WEIGHTS_FILE),
            "ingredients": [str(p) for p in ingredients],
        },
        parents=tuple(f"train-{p.name}" for p in ingredients),
        outputs=[output],
        started=started,
    )


@pipeline_task("soup")
def soup_task(run_dir: str, ingredients: list[str], fingerprints: list[str]) -> dict:
    return soup_step(RunPaths(Path(run_dir)), [Path(p) for p in ingredients])

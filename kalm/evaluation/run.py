"""Run mteb on local tasks for one embedder and write the results where the caller says.

mteb's result cache is deliberately bypassed (`cache=None`, overwrite "always"): whether a model needs
re-evaluating is the pipeline's decision (it keys on the model revision), and a hidden cache under ~/.cache
could otherwise hand back scores of an earlier model with the same name. The only files written are under
`output_dir`:

* `output_dir/results/<TaskName>.json`: mteb's own `TaskResult` serialisation, one per task;
* `output_dir/results/model_meta.json`: the mteb `ModelMeta` of the embedder;
* `output_dir/scores.json`: the model identity, one `TaskScore` per task and the MTK/MTY means.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import mteb
from mteb.results import TaskResult

from kalm.evaluation.encoder import KalmMtebEncoder
from kalm.evaluation.local_tasks import load_local_tasks
from kalm.evaluation.protocol import TaskScore, TextEmbedder

logger = logging.getLogger(__name__)


def _task_score(task: Any, result: TaskResult) -> TaskScore:
    """Pick the main score out of an mteb result without mteb's task registry (local tasks are not in it)."""
    split = task.metadata.eval_splits[0]
    entries = result.scores.get(split)
    if not entries:
        raise RuntimeError(f"mteb returned no scores for task {task.metadata.name!r} split {split!r}")
    main = float(sum(float(e["main_score"]) for e in entries) / len(entries))
    return TaskScore(
        task=task.metadata.name,
        task_type=str(task.metadata.type),
        languages=list(task.spec.languages),
        main_score_name=task.metadata.main_score,
        main_score=main,
        split=split,
    )


def summarize_scores(scores: Mapping[str, TaskScore] | Sequence[TaskScore]) -> dict[str, Any]:
    """MTK (mean over tasks) and MTY (mean over task types of the per-type means), as in the MTEB papers.

    MTY keeps one large family (e.g. many STS sets) from dominating the headline number. Means of an empty
    selection are None rather than NaN so the summary stays valid JSON.
    """
    items = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    by_type: dict[str, list[float]] = defaultdict(list)
    for item in items:
        by_type[item.task_type].append(item.main_score)
    type_means = {t: sum(v) / len(v) for t, v in sorted(by_type.items())}
    return {
        "n_tasks": len(items),
        "mean_over_tasks": (sum(i.main_score for i in items) / len(items)) if items else None,
        "mean_over_task_types": (sum(type_means.values()) / len(type_means)) if type_means else None,
        "per_type": type_means,
    }


def evaluate_embedder(
    embedder: TextEmbedder,
    tasks_dir: Path,
    output_dir: Path,
    task_names: Sequence[str] | None = None,
    batch_size: int = 32,
    *,
    use_instructions: bool = True,
) -> dict[str, TaskScore]:
    """Evaluate `embedder` on the local tasks in `tasks_dir` with mteb; write results under `output_dir`.

    Every call re-runs every selected task (no result cache); the caller decides when to skip. Returns the main
    score per task name, in the order the tasks were run. `use_instructions=False` evaluates without the KaLM-V2
    query instructions (for instruction-free baselines); it is recorded in scores.json because it changes
    the numbers.
    """
    tasks = load_local_tasks(Path(tasks_dir), task_names)
    encoder = KalmMtebEncoder(embedder, batch_size=batch_size, use_instructions=use_instructions)
    output_dir = Path(output_dir)
    results_dir = output_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "model_meta.json").write_text(
        json.dumps(encoder.mteb_model_meta.to_dict(), indent=2, default=str), encoding="utf-8"
    )

    scores: dict[str, TaskScore] = {}
    for task in tasks:
        name = task.metadata.name
        logger.info("evaluating %s on %s (%s)", embedder.name, name, task.metadata.type)
        model_result = mteb.evaluate(
            encoder,
            task,
            cache=None,
            overwrite_strategy="always",
            encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
            show_progress_bar=False,
            co2_tracker=False,
            raise_error=True,
        )
        if len(model_result.task_results) != 1:
            raise RuntimeError(f"mteb returned {len(model_result.task_results)} results for task {name!r}")
        result = model_result.task_results[0]
        result.to_disk(results_dir / f"{name}.json")
        scores[name] = _task_score(task, result)
        logger.info("%s %s = %.4f", name, scores[name].main_score_name, scores[name].main_score)

    summary = {
        "model": {"name": embedder.name, "revision": embedder.revision},
        "use_instructions": use_instructions,
        "tasks": {name: score.model_dump() for name, score in scores.items()},
        "summary": summarize_scores(scores),
    }
    (output_dir / "scores.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return scores

"""Run mteb on local tasks and official mteb tasks for one embedder and write the results where the caller says.

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
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kalm import runtime

runtime.configure()  # offline by default (KALM_HF_OFFLINE), before mteb imports the Hugging Face libraries

import mteb
from mteb.results import TaskResult

from kalm.evaluation.counterpart import protocol_of
from kalm.evaluation.encoder import KalmMtebEncoder
from kalm.evaluation.local_tasks import is_local_task, load_local_tasks
from kalm.evaluation.official import data_tasks, load_official_data
from kalm.evaluation.protocol import TaskScore, TextEmbedder
from kalm.progress import ProgressLog

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask

    from kalm.evaluation.corpus_cache import CorpusEmbeddingCache
    from kalm.evaluation.sharding import RaySharding

logger = logging.getLogger(__name__)

ResultCallback = Callable[[TaskScore, Path], None]
"""Called after each task with its score and mteb result file, e.g. to record it before the next task runs."""


def _task_score(task: Any, result: TaskResult) -> TaskScore:
    """Pick the main score out of an mteb result without mteb's task registry (local tasks are not in it).

    The split is the task's only one (local tasks) or `test` when an official task evaluates several; the
    score is the mean over the evaluated subsets (languages) of that split.
    """
    splits = list(task.eval_splits)
    split = "test" if "test" in splits else splits[0]
    entries = result.scores.get(split)
    if not entries:
        raise RuntimeError(f"mteb returned no scores for task {task.metadata.name!r} split {split!r}")
    main = float(sum(float(e["main_score"]) for e in entries) / len(entries))
    languages = list(task.spec.languages) if is_local_task(task) else list(task.languages)
    protocol = getattr(task, "kalm_protocol", None) or protocol_of(type(task))
    return TaskScore(
        task=task.metadata.name,
        task_type=str(task.metadata.type),
        languages=languages,
        main_score_name=task.metadata.main_score,
        main_score=main,
        split=split,
        protocol=protocol,
    )


def _record_protocol(result_file: Path, protocol: dict[str, Any] | None) -> None:
    """Add the protocol to mteb's result JSON (``kalm_protocol``; mteb ignores keys it does not know)."""
    data = json.loads(result_file.read_text(encoding="utf-8"))
    data["kalm_protocol"] = protocol
    result_file.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


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


def _log_task(
    model: str, position: str, score: TaskScore, started: float, encoder: KalmMtebEncoder, before: int
) -> None:
    """One progress line per finished task: its score, how long it took and how fast texts were encoded."""
    seconds, texts = time.monotonic() - started, encoder.encoded_texts - before
    rate = f", {texts / seconds:,.0f} texts/s" if texts and seconds > 0 else ""
    logger.info(
        "evaluate %s: task %s %s %s = %.4f (%.1f s, %s texts encoded%s)",
        *(model, position, score.task, score.main_score_name, score.main_score, seconds, f"{texts:,}", rate),
    )


def evaluate_embedder(
    embedder: TextEmbedder,
    tasks_dir: Path,
    output_dir: Path,
    task_names: Sequence[str] | None = None,
    batch_size: int = 32,
    *,
    use_instructions: bool = True,
    corpus_cache: CorpusEmbeddingCache | None = None,
    sharding: RaySharding | None = None,
) -> dict[str, TaskScore]:
    """Evaluate `embedder` on the local tasks in `tasks_dir`; see `evaluate_tasks`."""
    return evaluate_tasks(
        embedder,
        load_local_tasks(Path(tasks_dir), task_names),
        output_dir,
        batch_size,
        use_instructions=use_instructions,
        corpus_cache=corpus_cache,
        sharding=sharding,
    )


def evaluate_tasks(
    embedder: TextEmbedder,
    tasks: Sequence[AbsTask],
    output_dir: Path,
    batch_size: int = 32,
    *,
    use_instructions: bool = True,
    corpus_cache: CorpusEmbeddingCache | None = None,
    sharding: RaySharding | None = None,
    on_result: ResultCallback | None = None,
) -> dict[str, TaskScore]:
    """Evaluate `embedder` with mteb on `tasks` (local and/or official); write results under `output_dir`.

    Every call re-runs every task (no result cache); the caller decides when to skip. Returns the main
    score per task name, in the order the tasks were run. `use_instructions=False` evaluates without the KaLM-V2
    query instructions (for instruction-free baselines); it is recorded in scores.json because it changes
    the numbers. An official task's data is loaded right before it runs and released right after, so a
    benchmark never holds more than one dataset in memory; a task whose data cannot be loaded stops the run
    with `TaskDataUnavailable`, after `on_result` has seen every task finished before it.
    """
    encoder = KalmMtebEncoder(
        embedder,
        batch_size=batch_size,
        use_instructions=use_instructions,
        corpus_cache=corpus_cache,
        sharding=sharding,
    )
    output_dir = Path(output_dir)
    results_dir = output_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "model_meta.json").write_text(
        json.dumps(encoder.mteb_model_meta.to_dict(), indent=2, default=str), encoding="utf-8"
    )

    scores: dict[str, TaskScore] = {}
    for number, task in enumerate(tasks, 1):
        name = task.metadata.name
        logger.debug("evaluating %s on %s (%s)", embedder.name, name, task.metadata.type)
        started, encoded_before = time.monotonic(), encoder.encoded_texts
        encoder.track(ProgressLog(logger, f"evaluate {embedder.name} {name}", unit="texts"))
        loaded = [] if is_local_task(task) else data_tasks(task)
        for data_task in loaded:
            load_official_data(data_task)
        try:
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
        finally:
            for data_task in loaded:
                if data_task.data_loaded:
                    data_task.unload_data()
        if len(model_result.task_results) != 1:
            raise RuntimeError(f"mteb returned {len(model_result.task_results)} results for task {name!r}")
        result = model_result.task_results[0]
        result_file = results_dir / f"{name}.json"
        result.to_disk(result_file)
        scores[name] = _task_score(task, result)
        _record_protocol(result_file, scores[name].protocol)
        _log_task(embedder.name, f"{number}/{len(tasks)}", scores[name], started, encoder, encoded_before)
        if on_result is not None:
            on_result(scores[name], result_file)
    if corpus_cache is not None:
        logger.info(
            "corpus cache %s: %d hit(s), %d miss(es)",
            corpus_cache.root,
            corpus_cache.hits,
            corpus_cache.misses,
        )

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

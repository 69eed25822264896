"""A store-backed dev score for greedy soups (`training.soup.greedy_soup`).

Greedy soup scores every candidate, then every trial soup. Candidates were usually evaluated already (the
evaluate step records every checkpoint), so going through the store makes their scores free; trial soups are
new folders and get evaluated once, and are recorded too, so re-running the soup costs nothing. For the same
reason the corpus-embedding cache is off by default here: a trial soup's corpus vectors would never be read
again, only fill the state dir.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from kalm.hashing import hash_directory
from kalm.results.cached import EmbedderFactory, evaluate_with_store
from kalm.results.store import ResultsStore, open_store
from kalm.results.task_refs import current_mteb_version, local_task_refs


def dev_scorer(
    tasks_dir: Path | str,
    task_names: Sequence[str] | None = None,
    *,
    store: ResultsStore | Path | str | None = None,
    output_root: Path | str | None = None,
    use_instructions: bool = True,
    batch_size: int = 32,
    stage: str | None = None,
    embedder_factory: EmbedderFactory | None = None,
    embedding_cache: bool = False,
) -> Callable[[Path], float]:
    """`path -> mean main score over the dev tasks` (MTK), cached in and recorded to the store."""
    results_store = open_store(store)
    root = Path(output_root) if output_root is not None else results_store.path.parent / "dev-scores"

    def score(path: Path) -> float:
        result = evaluate_with_store(
            path,
            tasks_dir,
            root / Path(path).name,
            store=results_store,
            task_names=task_names,
            batch_size=batch_size,
            use_instructions=use_instructions,
            stage=stage,
            embedder_factory=embedder_factory,
            embedding_cache=embedding_cache,
        )
        values = [s.main_score for s in result.scores.values()]
        if not values:
            raise ValueError(f"no dev tasks selected in {tasks_dir}")
        return sum(values) / len(values)

    return score


def stored_dev_scores(
    paths: Sequence[Path],
    tasks_dir: Path | str,
    task_names: Sequence[str] | None = None,
    *,
    store: ResultsStore | Path | str | None = None,
    use_instructions: bool = True,
) -> dict[Path, float]:
    """Mean main score on the dev tasks of each path with a current stored result on all of them.

    For `greedy_soup(candidate_scores=...)`: ranking the candidates then costs no evaluation at all. Paths
    without complete current results are left out (greedy soup scores those itself).
    """
    results_store = open_store(store)
    refs = local_task_refs(tasks_dir, task_names)
    version = current_mteb_version()
    out: dict[Path, float] = {}
    for path in paths:
        found = results_store.lookup(
            hash_directory(Path(path)), refs, mteb_version=version, use_instructions=use_instructions
        )
        if refs and len(found) == len(refs):
            out[Path(path)] = sum(r.score.main_score for r in found.values()) / len(found)
    return out

"""The results store (DuckDB) and what is built on it: cached evaluation, leaderboard, re-evaluation.

Public API:

* `ResultsStore` / `open_store` / `default_store_path`: the store (``<state dir>/results.duckdb``);
* `TaskRef` / `local_task_refs` / `official_task_refs` / `current_mteb_version`: the cache key parts of a task;
* `evaluate_with_store` / `evaluate_model`: evaluate a model folder, reusing current stored results (the
  latter as a step's JSON summary); `soup_parents`: a soup's ingredient hashes for the registry;
* `build_leaderboard` / `compute_leaderboard` / `write_chart`: the leaderboard and its chart;
* `rich_tables` / `to_markdown` / `result_rows`: the leaderboard for a terminal or Markdown, and the stored
  rows themselves (what ``kalm results --format json|csv`` prints);
* `plan_reevaluation` / `reevaluate_all`: the scheduled re-scoring of every registered model;
* `dev_scorer` / `stored_dev_scores`: store-backed dev scores for greedy soups.
"""

from kalm.results.cached import StoredEvaluation, evaluate_model, evaluate_with_store, soup_parents
from kalm.results.dev_score import dev_scorer, stored_dev_scores
from kalm.results.formats import result_rows, rich_tables, to_markdown
from kalm.results.leaderboard import Leaderboard, build_leaderboard, compute_leaderboard, write_chart
from kalm.results.reevaluate import ReevaluationPlan, plan_reevaluation, reevaluate_all
from kalm.results.store import ModelRecord, ResultsStore, StoredResult, default_store_path, open_store
from kalm.results.task_refs import TaskRef, current_mteb_version, local_task_refs, official_task_refs

__all__ = [
    "Leaderboard",
    "ModelRecord",
    "ReevaluationPlan",
    "ResultsStore",
    "StoredEvaluation",
    "StoredResult",
    "TaskRef",
    "build_leaderboard",
    "compute_leaderboard",
    "current_mteb_version",
    "default_store_path",
    "dev_scorer",
    "evaluate_model",
    "evaluate_with_store",
    "local_task_refs",
    "official_task_refs",
    "open_store",
    "plan_reevaluation",
    "reevaluate_all",
    "result_rows",
    "rich_tables",
    "soup_parents",
    "stored_dev_scores",
    "to_markdown",
    "write_chart",
]

"""The ``reevaluate`` flow: score every registered model on every configured task it lacks a current result for.

Deployed nightly (``reevaluate/nightly`` in prefect.yaml). The work is `kalm.results.reevaluate_all`; the flow
adds the Prefect run record and publishes the leaderboard (a Markdown artifact and a sortable table).
"""

from __future__ import annotations

from prefect import flow

import flows._common  # noqa: F401 - process defaults (offline mode) before heavy imports
from kalm.results import Leaderboard, build_leaderboard, open_store, reevaluate_all, to_markdown
from tasks._artifacts import publish_markdown, publish_table


def publish_leaderboard(board: Leaderboard) -> None:
    """The leaderboard as the ``kalm-leaderboard`` Markdown artifact and its summary as the
    ``kalm-leaderboard-summary`` table (sortable in the UI), when running inside a Prefect flow run."""
    publish_markdown(
        to_markdown(board), "kalm-leaderboard", "MTK/MTY leaderboard, per family and per task (×100)"
    )
    rows = [
        {
            "model": str(label),
            "stage": row["stage"] if isinstance(row["stage"], str) else "",
            "tasks": int(row["n_tasks"]),
        }
        | {"MTK": round(100 * float(row["MTK"]), 2), "MTY": round(100 * float(row["MTY"]), 2)}
        for label, row in board.entries.iterrows()
    ]
    publish_table(rows, "kalm-leaderboard-summary", "MTK and MTY per model (×100)")


@flow(name="reevaluate")
def reevaluate(
    tasks_dir: str | None = None,
    task_names: list[str] | None = None,
    store: str | None = None,
    use_instructions: bool = True,
    batch_size: int = 32,
) -> dict:
    """Evaluate the missing or stale (model, task) pairs; a second run with nothing new evaluates nothing.

    Args:
        tasks_dir: evaluation tasks folder (default: the shared datasets' `eval/`).
        task_names: only these tasks (default: every task in `tasks_dir`).
        store: results DuckDB file (default: `<state dir>/results.duckdb`, KALM_STATE_DIR).
        use_instructions: score with the KaLM query instructions (the default setting of `kalm evaluate`).
        batch_size: encoding batch size.
    """
    results_store = open_store(store)
    summary = reevaluate_all(
        results_store, tasks_dir, task_names, batch_size=batch_size, use_instructions=use_instructions
    )
    publish_leaderboard(build_leaderboard(results_store))
    return summary

"""The ``reevaluate`` flow: score every registered model on every configured task it lacks a current result for.

Deployed nightly (``reevaluate/nightly`` in prefect.yaml). The work is `kalm.results.reevaluate_all`; the flow
adds the Prefect run record and publishes the leaderboard as a Markdown artifact.
"""

from __future__ import annotations

from prefect import flow

import flows._common  # noqa: F401 - process defaults (offline mode) before heavy imports
from kalm.results import build_leaderboard, open_store, reevaluate_all, to_markdown


def publish_leaderboard(markdown: str) -> None:
    """The leaderboard as the ``kalm-leaderboard`` artifact, when running inside a Prefect flow run."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is not None:
        create_markdown_artifact(markdown, key="kalm-leaderboard", description="MTK/MTY leaderboard")


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
    publish_leaderboard(to_markdown(build_leaderboard(results_store)))
    return summary

"""Prefect artifacts of the pipeline: what a person opens in the UI (scores, report, plots), in one place.

Every helper does nothing outside a flow or task run, so a step called as a plain function (tests, scripts)
publishes nothing. Keys follow Prefect's rule (lowercase letters, digits, dashes); an artifact with a key
is versioned on the Artifacts page, one without only shows on its run's page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def artifact_key(*parts: str) -> str:
    """``scores``, ``My_Run`` → ``scores-my-run``."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower())).strip("-")


def in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def publish_markdown(markdown: str, key: str, description: str) -> None:
    if in_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=markdown, key=key, description=description)


def publish_table(rows: list[dict[str, Any]], key: str, description: str) -> None:
    if in_run() and rows:
        from prefect.artifacts import create_table_artifact

        create_table_artifact(table=rows, key=key, description=description)


def publish_link(path: Path, text: str, description: str, key: str | None = None) -> None:
    """A link to a file of the run (``file://``: the run folder is on the machine that ran the flow)."""
    if in_run():
        from prefect.artifacts import create_link_artifact

        create_link_artifact(
            link=Path(path).resolve().as_uri(), link_text=text, key=key, description=description
        )


MEANS = {"mean_over_tasks": "MTK (mean over tasks)", "mean_over_task_types": "MTY (mean over task types)"}


def score_rows(evaluation: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model and task (main score ×100), then each model's MTK and MTY: the scores table artifact."""
    rows = []
    for model, result in evaluation.items():
        cached = set(result.get("cached", []))
        for task, score in result["scores"].items():
            source = "results store" if task in cached else "evaluated"
            rows.append(
                _score_row(
                    model, task, score["main_score"], score["task_type"], score["main_score_name"], source
                )
            )
        for key, name in MEANS.items():
            if result["summary"].get(key) is not None:
                rows.append(_score_row(model, name, result["summary"][key]))
    return rows


def _score_row(
    model: str, task: str, value: float, kind: str = "", metric: str = "", source: str = ""
) -> dict:
    return {
        "model": model,
        "task": task,
        "type": kind,
        "metric": metric,
        "score": round(100 * value, 2),
        "from": source,
    }


IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def publish_report(report: Path, markdown: str, key: str, description: str) -> None:
    """The report as a Markdown artifact, and links to the report file and each of its figures.

    The UI cannot show the report's images (they are files relative to ``report.md``), so in the artifact
    each image becomes a link to its file.
    """
    if not in_run():
        return
    folder = Path(report).resolve().parent
    figures = [(alt, folder / target) for alt, target in IMAGE.findall(markdown)]
    as_links = IMAGE.sub(lambda m: f"[{m[1]}]({(folder / m[2]).as_uri()})", markdown)
    publish_markdown(as_links, key, description)
    publish_link(report, report.name, f"{description}: the file")
    for alt, figure in figures:
        publish_link(figure, alt, f"figure of {description}: {alt}")

"""The leaderboard over the store: per task, per task family, MTK and MTY, as the KaLM/MTEB papers report.

MTK is the plain mean over tasks; MTY is the mean over task families (mteb task types) of the per-family
means, so one family with many sets (e.g. STS) does not dominate. One leaderboard entry is a model scored
with or without query instructions (the two settings give different numbers and are not mixed); each cell is
its latest stored result for that task. How it is printed lives in `kalm.results.formats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from kalm.results.store import ResultsStore

LATEST_SQL = """
SELECT e.model_hash, e.use_instructions, e.task, e.task_type, e.main_score, m.path, m.stage, m.run_id
FROM evaluations e LEFT JOIN models m USING (model_hash)
QUALIFY row_number() OVER (PARTITION BY e.model_hash, e.use_instructions, e.task
                           ORDER BY e.evaluated_at DESC) = 1
"""
COLUMNS = ["model_hash", "use_instructions", "task", "task_type", "main_score", "path", "stage", "run_id"]


@dataclass
class Leaderboard:
    """Three frames sharing one index (the entry label), ordered best MTY first.

    * ``entries``: model_hash, path, stage, run_id, use_instructions, n_tasks, MTK, MTY;
    * ``per_task``: one column per task (main score, NaN where not evaluated);
    * ``per_family``: one column per task type (mean main score of that family).
    """

    entries: pd.DataFrame
    per_task: pd.DataFrame
    per_family: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.entries.empty


def _label(row: pd.Series) -> str:
    """``<run id or parent folder>/<folder>@<hash prefix>``: checkpoint folders are named alike across runs."""
    path = Path(str(row["path"])) if isinstance(row["path"], str) else Path("?")
    scope = row["run_id"] if isinstance(row["run_id"], str) and row["run_id"] else path.parent.name
    name = f"{scope}/{path.name}" if scope else path.name
    suffix = "" if row["use_instructions"] else " (no instr.)"
    return f"{name}@{row['model_hash'][:8]}{suffix}"


def compute_leaderboard(rows: pd.DataFrame) -> Leaderboard:
    """The maths, on rows with the columns of `COLUMNS` (one row per entry and task)."""
    if rows is None or rows.empty:
        empty = pd.DataFrame()
        return Leaderboard(pd.DataFrame(columns=["MTK", "MTY"]), empty, empty)
    rows = rows.copy()
    rows["entry"] = rows.apply(_label, axis=1)
    per_task = rows.pivot_table(index="entry", columns="task", values="main_score", aggfunc="first")
    families = rows.groupby(["entry", "task_type"])["main_score"].mean()
    per_family = families.unstack("task_type")
    entries = rows.groupby("entry").agg(
        model_hash=("model_hash", "first"),
        path=("path", "first"),
        stage=("stage", "first"),
        run_id=("run_id", "first"),
        use_instructions=("use_instructions", "first"),
        n_tasks=("task", "nunique"),
        MTK=("main_score", "mean"),
    )
    entries["MTY"] = families.groupby("entry").mean()
    entries = entries.sort_values(["MTY", "MTK"], ascending=False)
    order = entries.index
    return Leaderboard(
        entries,
        per_task.reindex(order)[sorted(per_task.columns)],
        per_family.reindex(order)[sorted(per_family.columns)],
    )


def build_leaderboard(store: ResultsStore, *, models: list[str] | None = None) -> Leaderboard:
    """The leaderboard of the stored results (optionally only for the given model hashes)."""
    rows = store.frame(LATEST_SQL)
    if rows is not None and models is not None:
        rows = rows[rows["model_hash"].isin(models)]
    return compute_leaderboard(rows if rows is not None else pd.DataFrame(columns=COLUMNS))


def write_chart(board: Leaderboard, path: Path) -> Path:
    """A grouped bar chart of MTK and MTY per entry, as a PNG (headless Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [str(label) for label in board.entries.index]
    positions = range(len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(labels) + 2), 4.5))
    width = 0.38
    ax.bar([p - width / 2 for p in positions], 100 * board.entries["MTK"].astype(float), width, label="MTK")
    ax.bar([p + width / 2 for p in positions], 100 * board.entries["MTY"].astype(float), width, label="MTY")
    ax.set_xticks(list(positions), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("score (%)")
    ax.set_title("Mean over tasks (MTK) and over task families (MTY)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

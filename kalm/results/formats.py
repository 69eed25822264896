"""The results store in the forms people read and pipe: terminal tables, Markdown, and the stored rows.

Two kinds of output, on purpose:

* for people, the leaderboard (`rich_tables` for a terminal, `to_markdown` for reports and artifacts): scores
  ×100 with two decimals;
* for programs, :func:`result_rows`: the store's own ``evaluations`` rows (model, task, task revision, metric
  and the stored score at full precision), nothing averaged or rounded, so a notebook or a dashboard reads
  exactly what the store holds.

A terminal table never cuts a number: score columns get a fixed width that fits their widest value (their
task or family name wraps inside it), and when the console is too narrow for every column the columns are
spread over several tables, each repeating the model column, instead of letting rich squeeze them to ``6…``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from kalm.markdown import table

if TYPE_CHECKING:
    from rich.table import Table

    from kalm.results.leaderboard import Leaderboard
    from kalm.results.store import ResultsStore

ROWS_SQL = """
SELECT e.model_hash, m.path AS model_path, m.stage, m.run_id, e.task, e.task_type, e.task_revision,
       e.mteb_version, e.use_instructions, e.split, e.main_score_name AS metric, e.main_score AS score,
       e.languages, e.evaluated_at
FROM evaluations e LEFT JOIN models m USING (model_hash)
ORDER BY e.model_hash, e.use_instructions DESC, e.task, e.task_revision, e.mteb_version
"""
ROW_FIELDS = (
    "model_hash",
    "model_path",
    "stage",
    "run_id",
    "task",
    "task_type",
    "task_revision",
    "mteb_version",
    "use_instructions",
    "split",
    "metric",
    "score",
    "languages",
    "evaluated_at",
)
MODEL_MIN_WIDTH = 20  # the model label folds onto more lines below this, rather than squeezing scores
HEADER_MAX_WIDTH = 10  # a score column widens up to this for its header, then the header wraps
CELL_EXTRA = 3  # rich's default padding (one space each side) and the column's border


def result_rows(store: ResultsStore) -> list[dict[str, Any]]:
    """Every stored evaluation as a JSON-able dict (fields `ROW_FIELDS`; the score as stored, 0–1)."""
    rows = []
    for values in store.query(ROWS_SQL):
        row = dict(zip(ROW_FIELDS, values, strict=True))
        row["languages"] = list(row["languages"] or [])
        row["evaluated_at"] = row["evaluated_at"].isoformat()
        rows.append(row)
    return rows


def pct(value: Any) -> str:
    """A score ×100 with two decimals, ``—`` where there is none."""
    return "—" if value is None or pd.isna(value) else f"{100 * float(value):.2f}"


def rich_tables(board: Leaderboard, width: int = 200) -> list[Table]:
    """Summary (tasks, MTK, MTY, per family) and per-task tables, scores ×100, fitted into ``width`` columns."""
    labels = [str(label) for label in board.entries.index]
    summary = {
        "tasks": [str(n) for n in board.entries["n_tasks"]],
        "MTK": [pct(v) for v in board.entries["MTK"]],
        "MTY": [pct(v) for v in board.entries["MTY"]],
    }
    summary |= {str(f): [pct(v) for v in board.per_family[f]] for f in board.per_family.columns}
    per_task = {str(t): [pct(v) for v in board.per_task[t]] for t in board.per_task.columns}
    return [
        *_fitted(
            "Leaderboard: mean over tasks (MTK) and over task families (MTY), ×100", labels, summary, width
        ),
        *_fitted("Main score per task, ×100", labels, per_task, width),
    ]


def _fitted(title: str, labels: Sequence[str], columns: dict[str, list[str]], width: int) -> list[Table]:
    """One table per group of columns that fits ``width`` next to the model column (one group if all fit)."""
    widths = {name: _column_width(name, cells) for name, cells in columns.items()}
    groups: list[list[str]] = [[]]
    used = 1 + MODEL_MIN_WIDTH + CELL_EXTRA
    for name in columns:
        needed = widths[name] + CELL_EXTRA
        if groups[-1] and used + needed > width:
            groups.append([])
            used = 1 + MODEL_MIN_WIDTH + CELL_EXTRA
        groups[-1].append(name)
        used += needed
    tables = []
    for number, group in enumerate(groups, 1):
        suffix = f" ({number}/{len(groups)})" if len(groups) > 1 else ""
        tables.append(_table(title + suffix, labels, {name: columns[name] for name in group}, widths))
    return tables


def _column_width(name: str, cells: Sequence[str]) -> int:
    return max([len(cell) for cell in cells] + [min(len(name), HEADER_MAX_WIDTH)])


def _table(title: str, labels: Sequence[str], columns: dict[str, list[str]], widths: dict[str, int]) -> Table:
    from rich.table import Table

    out = Table(title=title)
    out.add_column("model", overflow="fold", min_width=MODEL_MIN_WIDTH)
    for name in columns:
        out.add_column(name, justify="right", width=widths[name], overflow="fold")
    for index, label in enumerate(labels):
        out.add_row(label, *(cells[index] for cells in columns.values()))
    return out


def to_markdown(board: Leaderboard) -> str:
    """The leaderboard as Markdown tables (Prefect artifact, RESULTS.md, ``kalm results --format markdown``)."""
    if board.empty:
        return "_no results stored yet_\n"
    families = list(board.per_family.columns)
    summary = table(
        ["model", "tasks", "MTK", "MTY", *families],
        (
            [label, row["n_tasks"], pct(row["MTK"]), pct(row["MTY"])]
            + [pct(board.per_family.loc[label, f]) for f in families]
            for label, row in board.entries.iterrows()
        ),
        "l" + "r" * (3 + len(families)),
    )
    per_task = table(
        ["model", *board.per_task.columns],
        ([label, *(pct(v) for v in row)] for label, row in board.per_task.iterrows()),
        "l" + "r" * len(board.per_task.columns),
    )
    return f"{summary}\n\n{per_task}\n"

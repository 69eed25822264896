"""The run report: one markdown page summarising data, training and evaluation of a run."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kalm.markdown import table


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    return [table(headers, ([_cell(value) for value in row] for row in rows)), ""]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "—" if value is None else str(value)


def _category_rows(stage_stats: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for stage, categories in sorted(stage_stats.items()):
        for category, entry in sorted(categories.items()):
            rows.append(
                [
                    stage,
                    category,
                    entry.get("rows_before"),
                    entry.get("rows_after"),
                    entry.get("share_before"),
                    entry.get("share_after"),
                ]
            )
    return rows


def render_report(
    run_id: str,
    data: Mapping[str, Mapping],
    trains: Mapping[str, Mapping],
    evaluation: Mapping[str, Mapping],
    figures_dir: Path | None = None,
) -> str:
    """The run's markdown report from its step summaries (``data``: collect/dedup/decontaminate/balance).

    With ``figures_dir`` (a folder next to the report) every plot is written or copied there and linked
    relative to the report, so the report and that folder can be moved or copied together; without it the
    report has no images.
    """
    from kalm.dedup.report import category_table_markdown, contamination_markdown, write_cluster_histogram

    collect, dedup, balance = data["collect"], data["dedup"], data["balance"]
    decontamination = data.get("decontaminate")
    lines = [f"# kalm-pipeline run `{run_id}`", "", "## Data", ""]
    lines += _table(["category", "rows collected"], [[k, v] for k, v in collect["rows_by_category"].items()])
    if collect.get("rows_by_stage"):
        lines += _table(["stage", "rows collected"], [[k, v] for k, v in collect["rows_by_stage"].items()])
    if collect.get("quarantined"):
        lines += ["Quarantined rows (reason → count):", ""]
        lines += _table(
            ["source", "reasons"],
            [[k, ", ".join(f"{r}: {n}" for r, n in v.items())] for k, v in collect["quarantined"].items()],
        )
    stats = dedup["stats"]
    lines += [
        f"Dedup: {stats['rows_in']} rows in, {stats['exact_duplicates']} exact and "
        f"{stats['near_duplicates']} near duplicates removed, {stats['rows_out']} rows out.",
        "",
    ]
    dstats = decontamination["stats"] if decontamination else None
    lines += [category_table_markdown(stats, dstats, balance["stats"]), ""]
    if dstats:
        lines += [contamination_markdown(dstats), ""]
    lines += ["Balance (per stage and category):", ""]
    lines += _table(
        ["stage", "category", "rows before", "rows after", "share before", "share after"],
        _category_rows(balance["stats"].get("stages", {})),
    )
    if figures_dir is not None and stats.get("cluster_size_histogram"):
        figure = write_cluster_histogram(stats["cluster_size_histogram"], figures_dir)
        lines += [_image("duplicate cluster sizes", figure, figures_dir), ""]
    if data.get("mine"):
        lines += _mining_lines(data["mine"], figures_dir)
    lines += ["## Training", ""]
    lines += _table(
        ["checkpoint", "steps", "examples", "first loss", "final loss", "wall s"],
        [
            [
                name,
                t["metrics"]["steps"],
                t["metrics"]["examples"],
                t["losses"][0] if t.get("losses") else None,
                t["metrics"]["final_loss"],
                t["metrics"]["wall_time_s"],
            ]
            for name, t in trains.items()
        ],
    )
    lines += _loss_curves(trains, figures_dir)
    lines += ["## Evaluation (mteb main scores, ×100)", ""]
    tasks = sorted({task for result in evaluation.values() for task in result["scores"]})
    rows = []
    for name, result in evaluation.items():
        scores = result["scores"]
        summary = result["summary"]
        rows.append(
            [
                name,
                *[_score(scores.get(task, {}).get("main_score")) for task in tasks],
                _score(summary["mean_over_tasks"]),
                _score(summary["mean_over_task_types"]),
            ]
        )
    lines += _table(["model", *tasks, "MTK", "MTY"], rows)
    return "\n".join(lines)


def _score(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _image(alt: str, figure: Path, figures_dir: Path) -> str:
    """A Markdown image of a file in ``figures_dir``, linked relative to the report (the folder's parent)."""
    return f"![{alt}]({figures_dir.name}/{figure.relative_to(figures_dir).as_posix()})"


def _copied(source: str | None, figures_dir: Path | None, name: str) -> Path | None:
    """A step's plot copied into the report's figures folder (None when there is no folder or no plot)."""
    if figures_dir is None or not source or not Path(source).is_file():
        return None
    figures_dir.mkdir(parents=True, exist_ok=True)
    target = figures_dir / name
    shutil.copyfile(source, target)
    return target


def _loss_curves(trains: Mapping[str, Mapping], figures_dir: Path | None) -> list[str]:
    lines = []
    for name, summary in trains.items():
        figure = _copied(summary.get("loss_curve"), figures_dir, f"loss_{name}.png")
        if figure is not None and figures_dir is not None:
            lines += [_image(f"loss curve: {name}", figure, figures_dir), ""]
    return lines


def _mining_lines(mine: Mapping, figures_dir: Path | None = None) -> list[str]:
    stats = mine["stats"]
    lines = [
        "## Hard-negative mining",
        "",
        f"Miner: `{stats['miner_checkpoint']}`. {stats['rows_mined']} rows mined, {stats['rows_exemplar']} "
        f"classification/clustering rows kept their exemplar negatives, {stats['rows_filled_random']} rows "
        f"topped up with random candidates. Mean cosine: positive {_cell(stats['positive_score_mean'])}, "
        f"mined negatives {_cell(stats['negative_score_mean'])}.",
        "",
    ]
    drops = [["dropped example", k, v] for k, v in stats["dropped_examples"].items()]
    drops += [["rejected candidate", k, v] for k, v in stats["rejected_candidates"].items()]
    if drops:
        lines += _table(["what", "reason", "count"], drops)
    figure = _copied(mine.get("plot"), figures_dir, "mined_scores.png")
    if figure is not None and figures_dir is not None:
        lines += [_image("mined score distributions", figure, figures_dir), ""]
    return lines


def training_markdown(name: str, summary: Mapping) -> str:
    """One training stage's telemetry (a ``train-<name>`` step summary) as a small Markdown page."""
    metrics = summary.get("metrics", summary)
    mfu = metrics.get("mfu")
    rows = [
        ("steps", metrics.get("steps")),
        ("final loss", metrics.get("final_loss")),
        ("tokens", metrics.get("tokens")),
        ("tokens/s", metrics.get("tokens_per_s")),
        ("MFU (estimate)", f"{mfu:.2e}" if isinstance(mfu, float) else mfu),
        ("wall time (s)", metrics.get("wall_time_s")),
    ]
    return (
        f"# Training: {name}\n\n{table(['metric', 'value'], rows, 'lr')}\n\n"
        f"Step log: `{summary.get('steps_log')}`; loss curve: `{summary.get('loss_curve')}`\n"
    )

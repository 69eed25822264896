"""``kalm evaluate`` (the evaluate flow), ``kalm results`` (the results store's leaderboard), ``kalm lineage``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kalm.cli.app import (
    ProfileOpt,
    RunIdOpt,
    RunsDirOpt,
    app,
    checked,
    console,
    fail,
    run_flow,
    runs_dir_param,
)
from kalm.cli.output import Format, FormatOpt, note, write_csv, write_json
from kalm.markdown import table as markdown_table

StoreOpt = Annotated[Path | None, typer.Option(help="results DuckDB (default: <state dir>/results.duckdb)")]


@app.command(rich_help_panel="Scores and lineage")
def evaluate(
    model: Annotated[Path | None, typer.Option(help="a sentence-transformers folder")] = None,
    tasks_dir: Annotated[Path | None, typer.Option(help="tasks in the shared/datasets/eval layout")] = None,
    output: Annotated[Path | None, typer.Option(help="where mteb result JSON goes (with --model)")] = None,
    task: Annotated[
        list[str] | None,
        typer.Option(
            help="a task (repeatable): a local task of the tasks dir if one has the name, else mteb's"
        ),
    ] = None,
    benchmark: Annotated[
        list[str] | None, typer.Option(help="an official mteb benchmark (repeatable), e.g. 'MTEB(eng, v1)'")
    ] = None,
    instructions: Annotated[
        bool | None,
        typer.Option(
            "--instructions/--no-instructions",
            help="KaLM instructions on queries; off for models trained without them (default: the profile's)",
        ),
    ] = None,
    store: StoreOpt = None,
    embedding_cache: Annotated[
        bool | None,
        typer.Option(
            help="reuse document embeddings in <state dir>/embeddings/eval (default: the profile's)"
        ),
    ] = None,
    shard_above: Annotated[
        int | None, typer.Option(min=1, help="encode calls of more texts than this run as Ray tasks")
    ] = None,
    shards: Annotated[int | None, typer.Option(min=1, help="Ray tasks per sharded encode call")] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray for --shard-above: auto or ray://host:10001 (default: local)")
    ] = None,
    profile: ProfileOpt = "demo",
    run_id: RunIdOpt = "demo",
    runs_dir: RunsDirOpt = None,
) -> None:
    """Score one model (``--model``) or the run's checkpoints with mteb on local and/or official tasks.

    Scores are recorded in the results store; tasks it already holds for this exact model are not re-run.
    """
    from flows.evaluate import evaluate as evaluate_flow
    from kalm.run.lock import ensure_free
    from kalm.run.profile import load_profile

    options = {
        "tasks_dir": str(tasks_dir.resolve()) if tasks_dir else None,
        "tasks": task or None,
        "benchmarks": benchmark or None,
    }
    resolved = checked(lambda: load_profile(profile))
    run = checked(lambda: _run_paths(run_id, runs_dir))
    checked(lambda: ensure_free(run))
    request = checked(
        lambda: resolved.task_request(run, **options, one_model=model is not None), (ValueError,)
    )
    checked(request.resolve, (ValueError,))  # unknown task or benchmark names: one line, before any flow
    results = run_flow(
        evaluate_flow,
        (ValueError,),
        profile=profile,
        run_id=run_id,
        runs_dir=runs_dir_param(runs_dir),
        model=str(model.resolve()) if model else None,
        output=str(output.resolve()) if output else None,
        **options,
        use_instructions=instructions,
        store=str(store) if store else None,
        embedding_cache=embedding_cache,
        shard_above=shard_above,
        shards=shards,
        ray_address=ray_address,
    )
    for name, result in results.items():
        _print_scores(name, result)


def _run_paths(run_id: str, runs_dir: Path | None):
    from kalm.run.paths import RunPaths

    return RunPaths.for_run(run_id, runs_dir)


def _print_scores(name: str, result: dict) -> None:
    for task_name, score in result["scores"].items():
        console.print(
            f"{name:24s} {task_name:32s} {score['main_score_name']:16s} {100 * score['main_score']:6.2f}"
        )
    summary = result["summary"]
    if summary["mean_over_tasks"] is not None:
        console.print(
            f"{name:24s} mean over tasks (MTK) {100 * summary['mean_over_tasks']:.2f}, "
            f"over task types (MTY) {100 * summary['mean_over_task_types']:.2f}"
        )
    console.print(
        f"{name:24s} {len(result['evaluated'])} task(s) evaluated, "
        f"{len(result['cached'])} read from the results store"
    )


@app.command(rich_help_panel="Scores and lineage")
def results(
    store: StoreOpt = None,
    chart: Annotated[
        Path | None, typer.Option(help="PNG path (default with --format table: <state dir>/leaderboard.png)")
    ] = None,
    output_format: FormatOpt = Format.table,
) -> None:
    """The results store: its leaderboard (per task, per family, MTK, MTY) and a PNG chart, or its rows.

    ``--format json|csv`` prints the stored rows (model, task, revision, metric, score as stored) for programs;
    ``table`` and ``markdown`` print the leaderboard for people.
    """
    from kalm.results import build_leaderboard, open_store, result_rows, rich_tables, to_markdown, write_chart
    from kalm.results.formats import ROW_FIELDS

    results_store = open_store(store)
    if output_format in (Format.json, Format.csv):
        rows = result_rows(results_store)
        write_json(rows) if output_format is Format.json else write_csv(rows, ROW_FIELDS)
        if not rows:
            note(f"no results in {results_store.path} yet: run `kalm evaluate` first")
        return
    board = build_leaderboard(results_store)
    if board.empty:
        note(f"no results in {results_store.path} yet: run `kalm evaluate` first")
        return
    if output_format is Format.markdown:
        sys.stdout.write(to_markdown(board))
    else:
        for table in rich_tables(board, console.width):
            console.print(table)
    if output_format is Format.table or chart is not None:
        png = write_chart(board, chart or results_store.path.parent / "leaderboard.png")
        if output_format is Format.table:
            console.print(f"chart: {png}", soft_wrap=True)
        else:
            note(f"chart: {png}")


@app.command(rich_help_panel="Scores and lineage")
def lineage(
    artefact: Annotated[Path, typer.Argument(help="a checkpoint, a data folder or a run step name")],
    output_format: FormatOpt = Format.table,
) -> None:
    """What produced an artefact, back through its parents to the raw inputs (as a tree, or the records)."""
    from kalm.run.lineage import ancestry, chain, find_run_root, read_lineage, step_of

    try:
        root = find_run_root(artefact.resolve())
        records = read_lineage(root)
        step = step_of(records, artefact, root)
    except FileNotFoundError as error:
        fail(error)
    if output_format is Format.table:
        for line in chain(root, step):
            console.print(line, highlight=False, soft_wrap=True)
        return
    steps = {name: records.get(name) for name in ancestry(records, step)}
    if output_format is Format.json:
        write_json({"run_dir": str(root), "step": step, "lineage": steps})
        return
    rows = [_lineage_row(name, record) for name, record in steps.items()]
    if output_format is Format.csv:
        write_csv(rows, LINEAGE_FIELDS)
    else:
        cells = ([row[field] for field in LINEAGE_FIELDS] for row in rows)
        sys.stdout.write(markdown_table(LINEAGE_FIELDS, cells) + "\n")


LINEAGE_FIELDS = ("step", "output", "fingerprint", "parents", "config_hash", "code_revision", "created_at")


def _lineage_row(name: str, record: dict | None) -> dict:
    """One step's lineage record flattened for csv/markdown (json keeps the records whole)."""
    record = record or {}
    row = {field: record.get(field) or "" for field in LINEAGE_FIELDS}
    return row | {"step": name, "parents": " ".join(record.get("parents", {}))}

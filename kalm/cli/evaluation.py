"""``kalm evaluate`` (the evaluate flow), ``kalm results`` (the results store's leaderboard), ``kalm lineage``."""

from __future__ import annotations

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
        Path | None, typer.Option(help="PNG path (default: <state dir>/leaderboard.png)")
    ] = None,
) -> None:
    """Print the leaderboard of the results store (per task, per family, MTK, MTY) and write a PNG chart."""
    from kalm.results import build_leaderboard, open_store, rich_tables, write_chart

    results_store = open_store(store)
    board = build_leaderboard(results_store)
    if board.empty:
        console.print(f"no results in {results_store.path} yet: run `kalm evaluate` first")
        return
    for table in rich_tables(board):
        console.print(table)
    png = write_chart(board, chart or results_store.path.parent / "leaderboard.png")
    console.print(f"chart: {png}")


@app.command(rich_help_panel="Scores and lineage")
def lineage(
    artefact: Annotated[Path, typer.Argument(help="a checkpoint, a data folder or a run step name")],
) -> None:
    """Print what produced an artefact, back through its parents to the raw inputs."""
    from kalm.run.lineage import chain, find_run_root, read_lineage, step_of

    try:
        root = find_run_root(artefact.resolve())
        step = step_of(read_lineage(root), artefact, root)
    except FileNotFoundError as error:
        fail(error)
    for line in chain(root, step):
        console.print(line, highlight=False, soft_wrap=True)

"""The ``kalm`` command: the whole pipeline (``kalm run``) or one stage at a time on a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from kalm import runtime

if TYPE_CHECKING:
    from kalm.evaluation import TaskSelection
    from kalm.profile import Profile
    from kalm.rundir import RunPaths

runtime.configure()

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="profile name in configs/ or a YAML path")]
RunIdOpt = Annotated[str, typer.Option("--run-id", help="run directory name under runs/")]
RunsDirOpt = Annotated[Path | None, typer.Option("--runs-dir", help="parent folder of run directories")]


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _known_errors() -> tuple[type[Exception], ...]:
    from data_catalog.catalog import CatalogError
    from data_catalog.collect import CollectError
    from data_catalog.loaders import SourceError
    from kalm.profile import ProfileError
    from training.backbone import UnsupportedArchitecture
    from training.soup import SoupError

    return (
        CatalogError,
        CollectError,
        SourceError,
        ProfileError,
        SoupError,
        UnsupportedArchitecture,
        FileNotFoundError,
    )


def _context(profile: str, run_id: str, runs_dir: Path | None):
    from flows._common import resolve

    return resolve(profile, run_id, str(runs_dir) if runs_dir else None)


@app.command()
def run(profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None) -> None:
    """Run the full pipeline as the ``full-run`` Prefect flow (completed steps are cached)."""
    from flows.full_run import full_run

    try:
        result = full_run(profile=profile, run_id=run_id, runs_dir=str(runs_dir) if runs_dir else None)
    except _known_errors() as error:
        _fail(error)
    console.print(f"[bold green]done[/] — report: {result['report']}")


@app.command()
def collect(
    profile: ProfileOpt = "demo",
    run_id: RunIdOpt = "demo",
    runs_dir: RunsDirOpt = None,
    catalog: Annotated[Path | None, typer.Option(help="catalog YAML instead of the profile's")] = None,
    source: Annotated[list[str] | None, typer.Option(help="collect only these sources")] = None,
) -> None:
    """Collect the catalog's sources into ``data/collected``."""
    from tasks.collect import collect_step, prepare_inputs

    try:
        resolved, paths = _context(profile, run_id, runs_dir)
        if catalog is not None:
            resolved = resolved.model_copy(update={"catalog": str(catalog.resolve()), "demo_data": False})
        prepare_inputs(resolved, paths)
        summary = collect_step(resolved, paths, only=source)
    except _known_errors() as error:
        _fail(error)
    for category, rows in summary["rows_by_category"].items():
        console.print(f"{category:32s} {rows:>10,d}")
    console.print(f"collected into {paths.collected}")


@app.command()
def dedup(profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None) -> None:
    """Remove exact and near duplicates: ``data/collected`` → ``data/dedup``."""
    from tasks.dedup import dedup_step

    resolved, paths = _context(profile, run_id, runs_dir)
    stats = dedup_step(resolved.dedup, paths)["stats"]
    console.print(
        f"{stats['rows_in']} in, {stats['exact_duplicates']} exact, {stats['near_duplicates']} near, "
        f"{stats['rows_out']} out → {paths.dedup}"
    )


@app.command()
def decontaminate(
    profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None
) -> None:
    """Drop rows that leak evaluation texts: ``data/dedup`` → ``data/decontaminated``."""
    from tasks.decontaminate import decontaminate_step

    resolved, paths = _context(profile, run_id, runs_dir)
    stats = decontaminate_step(resolved, paths)["stats"]
    for task, entry in stats["per_task"].items():
        if entry["rows_dropped"]:
            console.print(f"{task:32s} {entry['rows_dropped']:>8,d} rows dropped")
    console.print(f"{stats['rows_in']} in, {stats['rows_dropped']} dropped → {paths.decontaminated}")


@app.command()
def balance(profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None) -> None:
    """Cap sources and apply temperature quotas: ``data/decontaminated`` → ``data/balanced``."""
    from tasks.balance import balance_step

    resolved, paths = _context(profile, run_id, runs_dir)
    balance_step(resolved.balance, paths)
    console.print(f"balanced → {paths.balanced}")


@app.command()
def train(
    stage: Annotated[str, typer.Option(help="pretrain or finetune")] = "pretrain",
    seed: Annotated[int | None, typer.Option(help="fine-tune seed (soup ingredient)")] = None,
    profile: ProfileOpt = "demo",
    run_id: RunIdOpt = "demo",
    runs_dir: RunsDirOpt = None,
) -> None:
    """Train one stage; fine-tuning starts from ``checkpoints/pretrain`` on ``data/mined`` (``kalm mine``)."""
    from tasks.mine import mined_dir
    from tasks.train import train_step

    resolved, paths = _context(profile, run_id, runs_dir)
    if stage not in ("pretrain", "finetune"):
        _fail(ValueError(f"unknown stage {stage!r}: use pretrain or finetune"))
    init = paths.checkpoint("pretrain") if stage == "finetune" else None
    if init is not None and not init.exists():
        _fail(FileNotFoundError(f"fine-tuning starts from {init}; run `kalm train --stage pretrain` first"))
    data_dir = None
    if stage == "finetune" and resolved.mining.enabled:
        data_dir = mined_dir(paths)
        if not (data_dir / "manifest.json").exists():
            _fail(FileNotFoundError(f"no mined data in {data_dir}; run `kalm mine` first"))
    summary = train_step(resolved, paths, stage, seed if stage == "finetune" else None, init, data_dir)
    console.print(f"final loss {summary['metrics']['final_loss']:.4f} → {summary['checkpoint']}")


@app.command()
def mine(profile: ProfileOpt = "demo", run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None) -> None:
    """Mine fine-tuning hard negatives with ``checkpoints/pretrain``: ``data/balanced`` → ``data/mined``."""
    from tasks.mine import mine_step, mined_dir

    resolved, paths = _context(profile, run_id, runs_dir)
    model = paths.checkpoint("pretrain")
    if not (model / "modules.json").exists():
        _fail(FileNotFoundError(f"mining uses {model}; run `kalm train --stage pretrain` first"))
    stats = mine_step(resolved.mining, paths, model)["stats"]
    console.print(
        f"{stats['rows_mined']} rows mined, dropped {stats['dropped_examples']} → {mined_dir(paths)}"
    )


@app.command()
def soup(run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None, profile: ProfileOpt = "demo") -> None:
    """Average the run's fine-tuned checkpoints into ``checkpoints/soup``."""
    from tasks.soup import soup_step

    _, paths = _context(profile, run_id, runs_dir)
    ingredients = sorted(paths.checkpoints.glob("finetune-seed*[0-9]"))
    if not ingredients:
        _fail(FileNotFoundError(f"no finetune-seed* checkpoints in {paths.checkpoints}"))
    try:
        summary = soup_step(paths, ingredients)
    except _known_errors() as error:
        _fail(error)
    console.print(f"soup of {len(ingredients)} checkpoints → {summary['checkpoint']}")


@app.command()
def evaluate(
    model: Annotated[Path | None, typer.Option(help="a sentence-transformers folder")] = None,
    tasks_dir: Annotated[Path | None, typer.Option(help="tasks in the shared/datasets/eval layout")] = None,
    output: Annotated[Path | None, typer.Option(help="where mteb result JSON goes")] = None,
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
        bool, typer.Option(help="KaLM instructions on queries (off for models trained without them)")
    ] = True,
    store: Annotated[
        Path | None, typer.Option(help="results DuckDB (default: <state dir>/results.duckdb)")
    ] = None,
    embedding_cache: Annotated[
        bool | None,
        typer.Option(
            help="reuse document embeddings in <state dir>/embeddings/eval (default: the profile's)"
        ),
    ] = None,
    shard_above: Annotated[
        int | None,
        typer.Option(min=1, help="encode calls of more texts than this run as Ray tasks (default off)"),
    ] = None,
    shards: Annotated[
        int | None, typer.Option(min=1, help="Ray tasks per sharded encode call (default 2)")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray for --shard-above: auto or ray://host:10001 (default: KALM_RAY_ADDRESS, else local)"
        ),
    ] = None,
    profile: ProfileOpt = "demo",
    run_id: RunIdOpt = "demo",
    runs_dir: RunsDirOpt = None,
) -> None:
    """Score one model (``--model``) or the run's checkpoints with mteb on local and/or official tasks.

    Scores are recorded in the results store; tasks it already holds for this exact model are not re-run.
    """
    from kalm.evaluation import TaskDataUnavailable, TaskSelectionError, TaskSpecError
    from tasks.evaluate import evaluate_model, evaluate_step, sharding_for

    try:
        resolved, paths = _context(profile, run_id, runs_dir)
        overrides = {
            key: value
            for key, value in {
                "embedding_cache": embedding_cache,
                "shard_above": shard_above,
                "shards": shards,
            }.items()
            if value is not None
        }
        resolved = resolved.model_copy(update={"evaluate": resolved.evaluate.model_copy(update=overrides)})
        selection = _task_selection(resolved, paths, tasks_dir, task, benchmark, model is not None)
        sharding = sharding_for(resolved, ray_address)
        if model is not None:
            results = {
                model.name: evaluate_model(
                    model,
                    selection.tasks_dir,
                    output or paths.eval / model.name,
                    selection.local_names,
                    use_instructions=instructions,
                    store=store,
                    official_tasks=selection.official,
                    embedding_cache=resolved.evaluate.embedding_cache,
                    sharding=sharding,
                )
            }
        else:
            models = {
                p.name: str(p) for p in sorted(paths.checkpoints.iterdir()) if (p / "modules.json").exists()
            }
            results = evaluate_step(resolved, paths, models, selection=selection, sharding=sharding)
    except (*_known_errors(), TaskSelectionError, TaskDataUnavailable, TaskSpecError, ValueError) as error:
        _fail(error)
    for name, result in results.items():
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
        if "cached" in result:
            console.print(
                f"{name:24s} {len(result['evaluated'])} task(s) evaluated, "
                f"{len(result['cached'])} read from the results store"
            )


def _task_selection(
    resolved: Profile,
    paths: RunPaths,
    tasks_dir: Path | None,
    task: list[str] | None,
    benchmark: list[str] | None,
    one_model: bool,
) -> TaskSelection:
    """Local tasks dir and official tasks of ``kalm evaluate``.

    The profile's tasks dir is the default when neither ``--benchmark`` nor ``--task`` is given (all its tasks,
    or the profile's ``evaluate.tasks`` for the run's checkpoints); with ``--task`` it is consulted for local
    names when it exists; with only ``--benchmark`` no local task runs unless ``--tasks-dir`` is given.
    """
    from kalm.evaluation import select_tasks
    from tasks.evaluate import tasks_dir_for

    names = task or None
    if tasks_dir is None and not task and not benchmark:
        tasks_dir = tasks_dir_for(resolved, paths)
        names = None if one_model else resolved.evaluate.tasks
    elif tasks_dir is None and task:
        try:
            default = tasks_dir_for(resolved, paths)
        except ValueError:
            default = None
        tasks_dir = default if default is not None and default.is_dir() else None
    return select_tasks(tasks_dir, names, benchmark or ())


@app.command()
def report(run_id: RunIdOpt = "demo", runs_dir: RunsDirOpt = None, profile: ProfileOpt = "demo") -> None:
    """Rewrite ``report.md`` from the run's recorded step summaries."""
    from kalm.rundir import read_steps
    from tasks.report import report_step

    _, paths = _context(profile, run_id, runs_dir)
    steps = read_steps(paths)
    missing = [s for s in ("collect", "dedup", "balance", "evaluate") if s not in steps]
    if missing:
        _fail(FileNotFoundError(f"run {run_id!r} has no recorded {', '.join(missing)} step(s)"))
    trains = {name.removeprefix("train-"): s for name, s in steps.items() if name.startswith("train-")}
    data = {name: steps[name] for name in ("collect", "dedup", "decontaminate", "balance") if name in steps}
    report_step(paths, data, trains, steps["evaluate"])
    console.print(f"report: {paths.report}")


@app.command()
def lineage(
    artefact: Annotated[Path, typer.Argument(help="a checkpoint, a data folder or a run step name")],
) -> None:
    """Print what produced an artefact, back through its parents to the raw inputs."""
    from kalm.lineage import chain, find_run_root, read_lineage, step_of

    try:
        root = find_run_root(artefact.resolve())
        step = step_of(read_lineage(root), artefact, root)
    except FileNotFoundError as error:
        _fail(error)
    for line in chain(root, step):
        console.print(line, highlight=False, soft_wrap=True)


@app.command()
def serve() -> None:
    """Start a local Prefect server (127.0.0.1), create the work pool, deploy ``prefect.yaml``, start a worker."""
    from kalm import serve as server
    from kalm.settings import get_settings

    settings = get_settings()
    server.start_server(settings)
    server.deploy(settings)
    server.start_worker(settings)
    url = server.api_url(settings).removesuffix("/api")
    console.print(f"Prefect UI: {url}  (worker on pool {settings.work_pool!r}; logs in {settings.state_dir})")
    console.print(
        f"export PREFECT_API_URL={server.api_url(settings)}  # then: prefect deployment run build-data/demo"
    )


@app.command()
def stop() -> None:
    """Stop the worker and server started by ``kalm serve``."""
    from kalm import serve as server
    from kalm.settings import get_settings

    stopped = server.stop(get_settings())
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def results(
    store: Annotated[
        Path | None, typer.Option(help="results DuckDB (default: <state dir>/results.duckdb)")
    ] = None,
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


if __name__ == "__main__":
    app()

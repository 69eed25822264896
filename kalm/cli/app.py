"""The ``kalm`` Typer app, its shared options, and how a command runs a flow and reports a failure.

Every pipeline command runs the same Prefect flow its deployment runs (:func:`run_flow`): the command only
declares options, checks what the user typed (so a typo costs one line, not a flow run), calls, and prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from kalm import runtime

runtime.configure()

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The KaLM-Embedding-V2 pipeline: the whole run (``kalm run``) or one stage at a time on a run directory.",
)
console = Console()

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="profile name in configs/ or a YAML path")]
RunIdOpt = Annotated[str, typer.Option("--run-id", help="run directory name under runs/")]
RunsDirOpt = Annotated[Path | None, typer.Option("--runs-dir", help="parent folder of run directories")]


def fail(error: Exception | str) -> NoReturn:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def known_errors() -> tuple[type[Exception], ...]:
    """Errors whose message says what is wrong with the input: printed as one line, no traceback."""
    from data_catalog.catalog import CatalogError
    from data_catalog.collect import CollectError
    from data_catalog.loaders import SourceError
    from kalm.evaluation import TaskDataUnavailable, TaskSelectionError, TaskSpecError
    from kalm.evaluation.task_texts import UncheckedBenchmark
    from kalm.run.lock import RunLocked
    from kalm.run.profile import ProfileError
    from training.backbone import UnsupportedArchitecture
    from training.soup import SoupError

    return (
        CatalogError,
        CollectError,
        SourceError,
        ProfileError,
        SoupError,
        UnsupportedArchitecture,
        TaskSelectionError,
        TaskDataUnavailable,
        TaskSpecError,
        UncheckedBenchmark,
        RunLocked,
        FileNotFoundError,
    )


def checked(call: Callable[[], Any], extra: tuple[type[Exception], ...] = ()) -> Any:
    """``call()``, with a known error (or one of ``extra``) turned into one ``error:`` line and exit code 1."""
    try:
        return call()
    except (*known_errors(), *extra) as error:
        fail(error)


def run_flow(flow_fn: Callable[..., Any], extra: tuple[type[Exception], ...] = (), **params: Any) -> Any:
    """Run a flow as its deployment would; a known error ends the command with one line.

    The flow's console log keeps its lines but not the traceback of a known error (the Prefect API log,
    what the UI shows, keeps it): the message already names the source, field or task that is wrong.
    """
    quiet = _QuietKnownErrors((*known_errors(), *extra))
    handlers = [h for h in logging.getLogger().handlers if type(h).__name__ == "PrefectConsoleHandler"]
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        return checked(lambda: flow_fn(**params), extra)
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


class _QuietKnownErrors(logging.Filter):
    def __init__(self, known: tuple[type[Exception], ...]) -> None:
        super().__init__()
        self.known = known

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.known):
            record.exc_info, record.exc_text = None, None
        return True


def runs_dir_param(runs_dir: Path | None) -> str | None:
    return str(runs_dir) if runs_dir else None

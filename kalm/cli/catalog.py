"""``kalm catalog check`` (offline, and ``--online`` against the hub's metadata) and ``kalm catalog pin``.

The verdicts are the catalog library's (:mod:`data_catalog.check`, :mod:`data_catalog.hub_check`); the hub is
asked only here, through :func:`data_catalog.hub_fetch.fetch_metadata` (metadata, never data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kalm.cli.app import app, console, fail

catalog_app = typer.Typer(no_args_is_help=True, help="Check a catalog, or pin its hub sources to commits.")
app.add_typer(catalog_app, name="catalog", rich_help_panel="Data catalog")

CatalogArg = Annotated[Path, typer.Argument(help="a catalog YAML, e.g. data_catalog/kalm_v2.yaml")]


def _requirements(path: Path):
    from data_catalog.check import KALM_V2_REQUIREMENTS, Requirements

    return KALM_V2_REQUIREMENTS if path.name == "kalm_v2.yaml" else Requirements()


@catalog_app.command("check")
def check(
    catalog: CatalogArg,
    online: Annotated[
        bool, typer.Option(help="also ask the Hugging Face hub: repo, config, split, columns, licence")
    ] = False,
    include_disabled: Annotated[bool, typer.Option(help="also judge sources marked enabled: false")] = False,
) -> None:
    """Judge a catalog: schema, duplicate names, instructions, categories per stage, ``checked:`` marks.

    ``kalm_v2.yaml`` must also hold >= 20 pre-training and >= 100 fine-tuning categories and mark every source.
    Exit code 1 names each problem; ``--online`` without a reachable hub stops with one line.
    """
    from data_catalog.check import check_catalog

    report = check_catalog(catalog, _requirements(catalog))
    for line in report.summary():
        console.print(line, highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)
    if online:
        online_report = _online(catalog, include_disabled)
        for line in online_report.summary():
            console.print(line, highlight=False, soft_wrap=True)
        if not online_report.ok:
            raise typer.Exit(1)


def _online(catalog: Path, include_disabled: bool):
    from data_catalog.hub_check import HubUnreachable, verify_catalog
    from data_catalog.hub_fetch import fetch_metadata

    try:
        return verify_catalog(catalog, fetch_metadata, include_disabled=include_disabled)
    except HubUnreachable as error:
        fail(f"hub unreachable: {error}")


@catalog_app.command("pin")
def pin(
    catalog: CatalogArg,
    output: Annotated[Path | None, typer.Option(help="write here instead of over the catalog")] = None,
) -> None:
    """Write each hub source's resolved commit into its ``revision:``, so a run reads exactly those files."""
    from data_catalog.pin import pin_catalog

    report = _online(catalog, include_disabled=True)
    text = pin_catalog(catalog, report.resolved)
    (output or catalog).write_text(text, encoding="utf-8")
    console.print(f"pinned {len(report.resolved)} source(s) → {output or catalog}")

"""``--format``: what a command prints, for a person (table, markdown) or for a program (json, csv).

JSON and CSV go to stdout as plain text, never through rich (which wraps at the console width and colours), and
anything else a command has to say goes to stderr, so ``kalm results --format json | jq`` reads clean JSON.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


FormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="table (for a terminal), markdown, or json/csv (the stored data, for programs)",
    ),
]


def write_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_csv(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """One line per row; a list or dict cell is written as JSON, so it survives the round trip."""
    writer = csv.DictWriter(sys.stdout, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in fields})


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr so it never mixes into piped data."""
    typer.echo(message, err=True)

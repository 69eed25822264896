"""Markdown tables: the one place that turns a header and rows into a GitHub-flavoured table.

Reports, artifacts, the leaderboard and the benchmark tables all go through :func:`table`, so escaping (a ``|``
or a newline inside a cell would break the row) and alignment are decided once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def cell(value: Any) -> str:
    """A value as a table cell: ``|`` escaped, newlines folded into spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def row(cells: Iterable[Any]) -> str:
    return "|" + "|".join(f" {text} " if text else " " for text in map(cell, cells)) + "|"


def table(headers: Sequence[Any], rows: Iterable[Iterable[Any]], align: str = "l") -> str:
    """Header, separator and rows, joined by newlines (no trailing newline).

    ``align`` is one letter per column (``l`` left, ``r`` right), or one letter for every column.
    """
    if len(align) == 1:
        align = align * len(headers)
    if len(align) != len(headers) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r} must be 'l'/'r' once per column ({len(headers)} columns)")
    separator = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    return "\n".join([row(headers), separator, *(row(r) for r in rows)])

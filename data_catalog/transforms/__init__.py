"""Transforms: how a source's raw records become canonical rows (or quarantined rejects).

``where`` filters run first and stream; then one transform per source (see :class:`~data_catalog.catalog.Source`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from data_catalog.catalog import Source
from data_catalog.loaders import RawRecord
from data_catalog.transforms.base import Rejected, Row, Tally, apply_where, check_text
from data_catalog.transforms.beir import beir_rows
from data_catalog.transforms.exemplar import exemplar_rows
from data_catalog.transforms.grouped import explode_rows, group_rows
from data_catalog.transforms.pair import pair_rows

__all__ = [
    "Rejected",
    "Row",
    "Tally",
    "check_text",
    "exemplar_rows",
    "pair_rows",
    "run_transform",
]


def run_transform(
    source: Source, records: Iterable[RawRecord], max_chars: int, dropped: Tally, root: Path
) -> Iterator[Row | Rejected]:
    """Filter then transform one source's records; ``dropped`` counts records left out on purpose."""
    kept = apply_where(source.where, records, dropped)
    match source.transform:
        case "pair":
            return pair_rows(source, kept, max_chars)
        case "exemplar":
            return exemplar_rows(source, kept, max_chars)
        case "group":
            return group_rows(source, kept, max_chars, dropped)
        case "explode":
            return explode_rows(source, kept, max_chars, dropped)
        case "beir":
            return beir_rows(source, kept, max_chars, dropped, root)
    raise ValueError(f"source {source.name!r}: unknown transform {source.transform!r}")

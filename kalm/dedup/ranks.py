"""Work units over Parquet inputs and the global keep-priority rank of every row, computed without a driver.

Dedup and decontamination keep rows in the order ``(id, file, row)`` (the single-process path sorts the key
columns of the whole corpus by it). On a cluster that order is a sample sort: a few ids of every unit give
range boundaries, every unit sends ``(id, g)`` (``g`` = the row's global number, file by file) to its id range,
and each range task sorts its rows and numbers them. Range ``r`` then holds the ranks ``offsets[r] ..
offsets[r + 1] - 1``, so a row's rank is ``offsets[r] + local``, and ``(r, local)`` already compares like the
rank before the offsets are known. The ranks are the positions of the single-process path exactly, which is
why every "keep the smallest" rule and every output order of the two paths agree.

A unit is a run of consecutive row groups of one file (about ``unit_rows`` rows): one map task's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kalm.dedup.shuffle import read_partition, write_partitioned, write_table


@dataclass(frozen=True)
class Unit:
    index: int
    path: str
    row_groups: tuple[int, ...]
    g_start: int  # global number of the unit's first row
    rows: int


def plan_units(files: list[Path], unit_rows: int) -> list[Unit]:
    """Consecutive row groups of each file, about ``unit_rows`` rows per unit (at least one row group)."""
    units: list[Unit] = []
    g = 0
    for path in files:
        meta = pq.ParquetFile(path).metadata
        groups: list[int] = []
        rows = 0
        for k in range(meta.num_row_groups):
            n = meta.row_group(k).num_rows
            if groups and rows + n > unit_rows:
                units.append(Unit(len(units), str(path), tuple(groups), g, rows))
                g += rows
                groups, rows = [], 0
            groups.append(k)
            rows += n
        if rows:
            units.append(Unit(len(units), str(path), tuple(groups), g, rows))
            g += rows
    return units


def read_unit(unit: Unit, columns: list[str] | None = None) -> pa.Table:
    return pq.ParquetFile(unit.path).read_row_groups(list(unit.row_groups), columns=columns)


def unit_of(g: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The unit of each global row number (``starts``: every unit's ``g_start``)."""
    return np.searchsorted(starts, g, side="right") - 1


def range_of(rank: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The id range of each rank (``offsets``: first rank of every range, then the total)."""
    return np.searchsorted(offsets, rank, side="right") - 1


def sample_ids(unit: Unit, k: int) -> list[str]:
    """``k`` evenly spaced ids of the unit in sorted order (its quantiles)."""
    column = read_unit(unit, ["id"]).column("id")
    column = column.take(pc.sort_indices(column))
    if not len(column):
        return []
    at = np.unique(np.linspace(0, len(column) - 1, min(k, len(column))).astype(np.int64))
    return column.take(pa.array(at)).to_pylist()


def boundaries(samples: list[list[str]], ranges: int) -> list[str]:
    """At most ``ranges - 1`` increasing ids splitting the sample into equal parts."""
    pooled = sorted(s for unit in samples for s in unit)
    if ranges <= 1 or not pooled:
        return []
    cut = [pooled[int(len(pooled) * i / ranges)] for i in range(1, ranges)]
    return sorted(set(cut))


def id_range(ids: pa.ChunkedArray | pa.Array, bounds: list[str]) -> np.ndarray:
    """Range index of each id: the number of boundaries ``<= id`` (equal ids always share a range)."""
    if not bounds:
        return np.zeros(len(ids), np.int64)
    values = np.array(ids.to_pylist(), dtype=object)
    return np.searchsorted(np.array(bounds, dtype=object), values, side="right").astype(np.int64)


def rank_rows_path(scratch: Path, unit: int) -> Path:
    return scratch / "rank_in" / f"{unit:06d}.arrow"


def sorted_ids_path(scratch: Path, r: int) -> Path:
    return scratch / "sorted" / f"{r:06d}.arrow"


def ranks_back_path(scratch: Path, r: int) -> Path:
    return scratch / "rank_out" / f"{r:06d}.arrow"


def write_rank_rows(scratch: Path, unit: Unit, ids: pa.ChunkedArray, bounds: list[str], extra: dict) -> None:
    """The unit's ``(id, g, **extra)`` rows, one batch per id range."""
    g = unit.g_start + np.arange(len(ids), dtype=np.int64)
    table = pa.table({"id": ids, "g": g, **extra})
    write_partitioned(rank_rows_path(scratch, unit.index), table, id_range(ids, bounds), len(bounds) + 1)


def rank_range(r: int, units: int, starts: np.ndarray, scratch: Path) -> tuple[pa.Table, np.ndarray]:
    """Range ``r``'s rows sorted by ``(id, g)`` with their local rank; writes the sorted ``(id, g)`` (for
    lookups of a rank's id or row) and ``(g, r, local)`` back to the units, one batch per unit."""
    table = read_partition([rank_rows_path(scratch, u) for u in range(units)], r)
    table = table.take(pc.sort_indices(table, sort_keys=[("id", "ascending"), ("g", "ascending")]))
    local = np.arange(table.num_rows, dtype=np.int64)
    write_table(sorted_ids_path(scratch, r), table.select(["id", "g"]))
    g = table.column("g").to_numpy()
    back = pa.table({"g": g, "r": np.full(len(g), r, np.int32), "local": local})
    write_partitioned(ranks_back_path(scratch, r), back, unit_of(g, starts), units)
    return table, local


def unit_ranks(unit: Unit, ranges: int, offsets: np.ndarray, scratch: Path) -> np.ndarray:
    """The global rank of each row of ``unit``, in row order."""
    back = read_partition([ranks_back_path(scratch, r) for r in range(ranges)], unit.index)
    ranks = np.empty(unit.rows, np.int64)
    r = back.column("r").to_numpy().astype(np.int64)
    ranks[back.column("g").to_numpy() - unit.g_start] = offsets[r] + back.column("local").to_numpy()
    return ranks


def lookup(scratch: Path, offsets: np.ndarray, ranks: np.ndarray, column: str) -> list:
    """``column`` (``id`` or ``g``) of a few ranks, read from the sorted range files (for small lookups)."""
    out = []
    for rank in np.asarray(ranks, np.int64).tolist():
        r = int(range_of(np.array([rank]), offsets)[0])
        table = read_partition([sorted_ids_path(scratch, r)], 0)
        out.append(table.column(column)[rank - int(offsets[r])].as_py())
    return out


def rank_count(r: int, units: int, starts: np.ndarray, scratch: Path) -> int:
    """:func:`rank_range` as a stage body: the number of rows in range ``r``."""
    return rank_range(r, units, starts, Path(scratch))[0].num_rows

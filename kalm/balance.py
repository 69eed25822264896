"""Source caps and temperature-sampled category quotas over deduplicated canonical Parquet, in DuckDB.

Why: a few huge sources (and categories) would otherwise dominate training. A per-source cap bounds any
single source; temperature sampling ``p_c ∝ n_c ** alpha`` (alpha < 1 flattens) sets how a stage's row
budget is split across categories. Row selection is a seeded hash order (``md5(id:seed)``), so it is
reproducible, independent of input order, and every decision on rows runs as SQL (no Python row loops);
only the per-category quota arithmetic (a handful of numbers) happens in Python, with exact fractions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from kalm.dedup.io import PartWriter, discover_parquet

_ORDER = "h, id, filename, file_row_number"  # seeded order with total tie-breaking


class BalanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_source_cap: int | None = Field(None, ge=0, description="max rows kept per source (None = no cap)")
    alpha: float = Field(0.5, ge=0.0, description="temperature exponent: p_c ∝ n_c ** alpha")
    total_budget: int | None = Field(None, ge=0, description="rows per stage (None = only the cap applies)")
    seed: int = 0
    rows_per_part: int = Field(1_000_000, ge=1)
    row_group_size: int = Field(100_000, ge=1)


class CategoryBalance(BaseModel):
    rows_before: int
    share_before: float
    rows_capped: int = Field(description="rows left after the per-source cap")
    rows_after: int
    share_after: float


class BalanceStats(BaseModel):
    rows_in: int
    rows_out: int
    stages: dict[str, dict[str, CategoryBalance]] = Field(description="stage -> category -> counts/shares")


def temperature_quotas(counts: Mapping[str, int], alpha: float, budget: int | None) -> dict[str, int]:
    """Integer quotas ``<= n_c`` summing to ``min(budget, Σ n_c)``, allocated ∝ ``n_c ** alpha``.

    Water-filling: a category whose proportional share exceeds its size gets all its rows and the rest of
    the budget is re-split among the others. Rounding is largest-remainder (ties by category name), with
    exact rational arithmetic so results never depend on float summation order.
    """
    if budget is None:
        return dict(counts)
    quotas = dict.fromkeys(counts, 0)
    active = {c: n for c, n in counts.items() if n > 0}
    remaining = min(budget, sum(active.values()))
    shares: dict[str, Fraction] = {}
    while active:
        weights = {c: Fraction(float(n) ** alpha) for c, n in active.items()}
        total_w = sum(weights.values())
        shares = {c: remaining * w / total_w for c, w in weights.items()}
        full = [c for c in sorted(active) if shares[c] >= active[c]]
        if not full:
            break
        for c in full:
            quotas[c] = active.pop(c)
            remaining -= quotas[c]
    floors = {c: math.floor(shares[c]) for c in active}
    leftover = remaining - sum(floors.values())
    for c in sorted(active, key=lambda c: (-(shares[c] - floors[c]), c))[:leftover]:
        floors[c] += 1
    quotas.update(floors)
    return quotas


def _limit_sql(table: str, partition: str, group: str, limit: str | None) -> str:
    """Rows of ``table`` whose rank in ``_ORDER`` within ``partition`` is ``<= limit`` (a column or parameter).

    Only partitions larger than their limit are ranked (a window sort is the expensive part); the others are
    kept whole. Same rows as ranking everything; callers never rely on the table's row order.
    """
    if limit is None:
        return f"SELECT * FROM {table}"
    return f"""
        WITH over_limit AS (SELECT {partition} FROM {table} GROUP BY {group} HAVING count(*) > {limit})
        SELECT * FROM {table} ANTI JOIN over_limit USING ({partition})
        UNION ALL
        SELECT * FROM (
            SELECT t.* FROM {table} t SEMI JOIN over_limit USING ({partition})
            QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {_ORDER}) <= {limit}
        )
    """


def _counts(con: duckdb.DuckDBPyConnection, table: str) -> dict[tuple[str, str], int]:
    rows = con.sql(f"SELECT stage, category, count(*) FROM {table} GROUP BY ALL").fetchall()
    return {(s, c): int(n) for s, c, n in rows}


def _stats(before: dict, capped: dict, after: dict) -> BalanceStats:
    stages: dict[str, dict[str, CategoryBalance]] = {}
    for stage in sorted({s for s, _ in before}):
        cats = sorted(c for s, c in before if s == stage)
        tot_b = sum(before[(stage, c)] for c in cats)
        tot_a = sum(after.get((stage, c), 0) for c in cats)
        stages[stage] = {
            c: CategoryBalance(
                rows_before=before[(stage, c)],
                share_before=before[(stage, c)] / tot_b,
                rows_capped=capped.get((stage, c), 0),
                rows_after=after.get((stage, c), 0),
                share_after=after.get((stage, c), 0) / tot_a if tot_a else 0.0,
            )
            for c in cats
        }
    return BalanceStats(rows_in=sum(before.values()), rows_out=sum(after.values()), stages=stages)


def balance_dataset(in_dir: Path, out_dir: Path, cfg: BalanceConfig) -> BalanceStats:
    """Cap per source, then sample categories to temperature quotas per stage; write parts + stats.json.

    Reads ``part-*.parquet`` under ``in_dir`` (dedup output; ``removed.parquet`` and quarantine ignored).
    Output rows are sorted by id and byte-identical on re-run.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = [str(p) for p in discover_parquet(in_dir, "part-*.parquet", exclude=out_dir)]
    writer = PartWriter(out_dir, cfg.rows_per_part, cfg.row_group_size)
    con = duckdb.connect()
    try:
        if not files:
            writer.close()
            stats = _stats({}, {}, {})
        else:
            src = "read_parquet($files, filename = true, file_row_number = true)"
            con.execute(
                f"CREATE TEMP TABLE keys AS SELECT filename, file_row_number, id, source, stage, category, "
                f"md5_number(id || ':' || $seed) AS h FROM {src}",
                {"files": files, "seed": str(cfg.seed)},
            )
            con.execute(
                "CREATE TEMP TABLE capped AS "
                + _limit_sql("keys", "source", "source", None if cfg.per_source_cap is None else "$cap"),
                None if cfg.per_source_cap is None else {"cap": int(cfg.per_source_cap)},
            )
            before, capped = _counts(con, "keys"), _counts(con, "capped")
            quota_rows = []
            for stage in sorted({s for s, _ in capped}):
                per_cat = {c: n for (s, c), n in capped.items() if s == stage}
                for cat, q in temperature_quotas(per_cat, cfg.alpha, cfg.total_budget).items():
                    quota_rows.append({"stage": stage, "category": cat, "quota": q})
            schema = pa.schema([("stage", pa.string()), ("category", pa.string()), ("quota", pa.int64())])
            con.register("quotas", pa.Table.from_pylist(quota_rows, schema=schema))
            con.execute(
                "CREATE TEMP TABLE quoted AS SELECT c.filename, c.file_row_number, c.id, c.h, c.stage, "
                "c.category, q.quota FROM capped c JOIN quotas q ON c.stage = q.stage AND c.category = q.category"
            )
            con.execute(
                "CREATE TEMP TABLE selected AS "
                + _limit_sql("quoted", "stage, category", "stage, category, quota", "quota")
            )
            after = _counts(con, "selected")
            sql = (
                f"SELECT r.* FROM {src} r SEMI JOIN selected s "
                "ON r.filename = s.filename AND r.file_row_number = s.file_row_number "
                "ORDER BY r.id, r.filename, r.file_row_number"
            )
            writer.write_all(con.sql(sql, params={"files": files}).to_arrow_reader(cfg.row_group_size))
            stats = _stats(before, capped, after)
    finally:
        con.close()
    (out_dir / "stats.json").write_text(json.dumps(stats.model_dump(mode="json"), indent=2) + "\n")
    return stats

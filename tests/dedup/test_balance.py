"""Balance: seeded per-source caps, temperature quotas with water-filling, byte-identical output."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kalm.balance import BalanceConfig, BalanceStats, balance_dataset, temperature_quotas

from .fixtures import read_dir, write_rows


def test_temperature_quotas_hand_computed() -> None:
    # p ∝ sqrt(900):sqrt(100) = 30:10 -> 400 split 300/100.
    assert temperature_quotas({"a": 900, "b": 100}, 0.5, 400) == {"a": 300, "b": 100}
    # Budget above the total: everything (sum is min(B, Σn)).
    assert temperature_quotas({"a": 900, "b": 100}, 0.5, 5000) == {"a": 900, "b": 100}
    # No budget: only the cap applies, so quotas are the counts.
    assert temperature_quotas({"a": 900, "b": 100}, 0.5, None) == {"a": 900, "b": 100}
    # alpha = 0: uniform.
    assert temperature_quotas({"a": 900, "b": 100, "c": 40}, 0.0, 90) == {"a": 30, "b": 30, "c": 30}


def test_temperature_quotas_water_filling_and_rounding() -> None:
    # Shares of 311 by 30:15:sqrt(10) give c ≈ 20.4 > 10 rows, so c keeps all 10 and the remaining 301 is
    # re-split 30:15 -> 200.67 / 100.33 -> floors 200 + 100, the leftover row goes to the larger remainder.
    assert temperature_quotas({"a": 900, "b": 225, "c": 10}, 0.5, 311) == {"a": 201, "b": 100, "c": 10}
    # Exact tie in remainders (50.5 / 50.5): broken by category name, deterministically.
    assert temperature_quotas({"b": 100, "a": 100}, 0.5, 101) == {"a": 51, "b": 50}
    # Cascading fill: after c fills, b also fills; the rest goes to a.
    q = temperature_quotas({"a": 10_000, "b": 60, "c": 5}, 0.5, 2_000)
    assert q == {"a": 1_935, "b": 60, "c": 5}
    for counts, budget in [({"x": 7, "y": 13, "z": 1}, 11), ({"x": 3, "y": 3, "z": 3}, 8)]:
        q = temperature_quotas(counts, 0.5, budget)
        assert sum(q.values()) == budget and all(q[c] <= counts[c] for c in counts)


def _fixture(in_dir: Path) -> list[dict]:
    rows = []
    plan = {
        ("big", "retrieval", "finetune"): 900,
        ("small", "sts", "finetune"): 100,
        ("pre", "web", "pretrain"): 50,
    }
    for (source, category, stage), n in plan.items():
        rows += [
            {"id": f"{source}-{i:04d}", "source": source, "category": category, "stage": stage}
            for i in range(n)
        ]
    rows += [{"id": f"big2-{i:04d}", "source": "big2", "category": "retrieval"} for i in range(100)]
    write_rows(in_dir / "part-00000.parquet", rows[::2])
    write_rows(in_dir / "part-00001.parquet", rows[1::2])
    write_rows(in_dir / "removed.parquet", [{"id": "zzz", "source": "ghost"}])  # must be ignored
    return rows


def test_cap_is_seeded_and_bounded(tmp_path: Path) -> None:
    _fixture(tmp_path / "in")
    picks = {}
    for seed in (0, 0, 1):
        out = tmp_path / f"out{len(picks)}"
        balance_dataset(tmp_path / "in", out, BalanceConfig(per_source_cap=200, seed=seed))
        picks[len(picks)] = read_dir(out)
    by_source = Counter(picks[0].column("source").to_pylist())
    assert by_source == {"big": 200, "small": 100, "pre": 50, "big2": 100}
    assert picks[0].equals(picks[1])
    assert set(picks[0].column("id").to_pylist()) != set(picks[2].column("id").to_pylist())
    assert "ghost" not in by_source


def test_quotas_applied_per_stage_and_byte_identical(tmp_path: Path) -> None:
    _fixture(tmp_path / "in")
    cfg = BalanceConfig(per_source_cap=800, alpha=0.5, total_budget=400, seed=3)
    stats = balance_dataset(tmp_path / "in", tmp_path / "a", cfg)
    balance_dataset(tmp_path / "in", tmp_path / "b", cfg)
    for name in ("part-00000.parquet", "stats.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    kept = read_dir(tmp_path / "a")
    ids = kept.column("id").to_pylist()
    assert ids == sorted(ids)
    # finetune after cap: retrieval 800 (big) + 100 (big2) = 900, sts 100 -> 300 / 100; pretrain 50 < 400.
    counts = Counter(zip(kept.column("stage").to_pylist(), kept.column("category").to_pylist(), strict=True))
    assert counts == {("finetune", "retrieval"): 300, ("finetune", "sts"): 100, ("pretrain", "web"): 50}
    ft = stats.stages["finetune"]
    assert (ft["retrieval"].rows_before, ft["retrieval"].rows_capped, ft["retrieval"].rows_after) == (
        1000,
        900,
        300,
    )
    assert ft["retrieval"].share_before == pytest.approx(1000 / 1100) and ft["sts"].share_after == 0.25
    assert stats.rows_in == 1150 and stats.rows_out == 450
    assert BalanceStats.model_validate(json.loads((tmp_path / "a" / "stats.json").read_text())) == stats
    assert pq.read_metadata(tmp_path / "a" / "part-00000.parquet").schema.to_arrow_schema().metadata


def test_quota_rows_follow_seeded_hash_order(tmp_path: Path) -> None:
    """The budgeted subset is a prefix of the same seeded order the full (unbudgeted) ranking uses."""
    _fixture(tmp_path / "in")
    small = read_dir(_run(tmp_path, "s", BalanceConfig(total_budget=200, seed=5)))
    large = read_dir(_run(tmp_path, "l", BalanceConfig(total_budget=400, seed=5)))
    assert _ids_of(small, "retrieval") < _ids_of(large, "retrieval")


def _ids_of(table: pa.Table, category: str) -> set[str]:
    pairs = zip(table["id"].to_pylist(), table["category"].to_pylist(), strict=True)
    return {i for i, c in pairs if c == category}


def _run(tmp_path: Path, name: str, cfg: BalanceConfig) -> Path:
    balance_dataset(tmp_path / "in", tmp_path / name, cfg)
    return tmp_path / name

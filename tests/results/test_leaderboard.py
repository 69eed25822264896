"""Leaderboard maths by hand (MTK, MTY, per family), latest-result selection, rendering, chart and CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from kalm.evaluation import TaskScore
from kalm.results import ResultsStore, build_leaderboard, rich_tables, to_markdown, write_chart
from tests.plots import MPL_BLUE, MPL_ORANGE, bars, read_png


def score(task: str, family: str, value: float) -> TaskScore:
    return TaskScore(
        task=task, task_type=family, languages=["eng"], main_score_name="m", main_score=value, split="test"
    )


def record(
    store: ResultsStore, model: str, scores: list[TaskScore], *, rev: str = "r", instr: bool = True
) -> None:
    store.record_scores(
        model,
        scores,
        task_revisions={s.task: rev for s in scores},
        mteb_version="9.9",
        use_instructions=instr,
    )


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(tmp_path / "results.duckdb")
    s.register_model("a" * 64, "/ckpt/alpha", stage="finetune-seed0")
    s.register_model("b" * 64, "/ckpt/beta", stage="soup")
    # alpha: STS 0.8, 0.6; Retrieval 0.3 -> MTK 1.7/3, MTY (0.7 + 0.3)/2 = 0.5
    record(s, "a" * 64, [score("S1", "STS", 0.8), score("S2", "STS", 0.6), score("R1", "Retrieval", 0.3)])
    # beta: STS 0.5, 0.5; Retrieval 0.6 -> MTK 1.6/3, MTY (0.5 + 0.6)/2 = 0.55
    record(s, "b" * 64, [score("S1", "STS", 0.5), score("S2", "STS", 0.5), score("R1", "Retrieval", 0.6)])
    # alpha without instructions is its own entry
    record(s, "a" * 64, [score("S1", "STS", 0.9)], instr=False)
    return s


def test_mtk_mty_by_hand(store: ResultsStore) -> None:
    board = build_leaderboard(store)
    alpha, beta, plain = "ckpt/alpha@aaaaaaaa", "ckpt/beta@bbbbbbbb", "ckpt/alpha@aaaaaaaa (no instr.)"
    # ordered by MTY: plain (0.9) > beta (0.55) > alpha (0.5), although alpha has the higher MTK than beta
    assert list(board.entries.index) == [plain, beta, alpha]
    assert board.entries.loc[alpha, "MTK"] == pytest.approx((0.8 + 0.6 + 0.3) / 3)
    assert board.entries.loc[alpha, "MTY"] == pytest.approx(0.5)
    assert board.entries.loc[beta, "MTK"] == pytest.approx(1.6 / 3)
    assert board.entries.loc[beta, "MTY"] == pytest.approx(0.55)
    assert board.entries.loc[plain, "n_tasks"] == 1
    assert board.per_family.loc[alpha, "STS"] == pytest.approx(0.7)
    assert board.per_family.loc[alpha, "Retrieval"] == pytest.approx(0.3)
    assert board.per_task.loc[beta, "R1"] == pytest.approx(0.6)
    assert board.per_task.loc[plain].isna().sum() == 2
    assert board.entries.loc[beta, "stage"] == "soup"


def test_latest_result_per_task_wins(store: ResultsStore) -> None:
    record(store, "b" * 64, [score("R1", "Retrieval", 0.2)], rev="r-new")  # task revised, re-scored
    board = build_leaderboard(store, models=["b" * 64])
    assert list(board.entries.index) == ["ckpt/beta@bbbbbbbb"]
    assert board.entries.iloc[0]["MTY"] == pytest.approx((0.5 + 0.2) / 2)


def test_renderings(store: ResultsStore, tmp_path: Path) -> None:
    board = build_leaderboard(store)
    console = Console(record=True, width=200)
    for table in rich_tables(board):
        console.print(table)
    text = console.export_text()
    assert "MTY" in text and "55.00" in text and "ckpt/beta@bbbbbbbb" in text
    markdown = to_markdown(board)
    assert "| ckpt/beta@bbbbbbbb | 3 | 53.33 | 55.00 |" in markdown
    png = read_png(write_chart(board, tmp_path / "chart" / "board.png"))
    # One MTK (blue) and one MTY (orange) bar per entry, in the board's order, on one axis from zero: every
    # bar's height in pixels is the same multiple of its value (the legend's small patches are left out).
    mtk = [h for h in bars(png, MPL_BLUE) if h > 20]
    mty = [h for h in bars(png, MPL_ORANGE) if h > 20]
    assert len(mtk) == len(mty) == len(board.entries) == 3
    values = [*board.entries["MTK"], *board.entries["MTY"]]
    per_unit = [h / v for h, v in zip(mtk + mty, values, strict=True)]
    assert max(per_unit) / min(per_unit) == pytest.approx(1.0, abs=0.01), (mtk, mty, values)


def test_results_command(store: ResultsStore, tmp_path: Path) -> None:
    from kalm.cli import app

    chart = tmp_path / "lb.png"
    result = CliRunner().invoke(app, ["results", "--store", str(store.path), "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    assert "ckpt/alpha@aaaaaaaa" in result.output and f"chart: {chart}" in result.output.replace("\n", "")
    assert chart.exists()


def test_results_command_on_empty_store(tmp_path: Path) -> None:
    from kalm.cli import app

    result = CliRunner().invoke(app, ["results", "--store", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 0 and "no results" in result.output

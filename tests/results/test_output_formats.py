"""What ``kalm results`` and ``kalm lineage`` print: full scores in a narrow pipe, and data programs can read."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kalm.evaluation import TaskScore
from kalm.results import ResultsStore, build_leaderboard
from kalm.results.formats import pct
from kalm.settings import PROJECT_ROOT

# The demo's task names and families: long enough that six score columns do not fit 80 columns.
TASKS = {
    "DemoClassification": "Classification",
    "DemoClustering": "Clustering",
    "DemoPairClassification": "PairClassification",
    "DemoReranking": "Reranking",
    "DemoRetrieval": "Retrieval",
    "DemoSTS": "STS",
}
MODELS = ("pretrain", "finetune-seed0", "finetune-seed1", "soup")
SCORE = re.compile(r"^(\d+\.\d\d|—)$")


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(tmp_path / "results.duckdb")
    for m, model in enumerate(MODELS):
        model_hash = f"{m}" * 64
        s.register_model(model_hash, f"/runs/a-long-run-name/checkpoints/{model}", stage=model, run_id="demo")
        scores = [
            TaskScore(
                task=task,
                task_type=family,
                languages=["eng"],
                main_score_name="m",
                main_score=1.0 if (m, t) == (3, 0) else 0.0345 + 0.1234 * t + 0.0111 * m,
                split="test",
            )
            for t, (task, family) in enumerate(TASKS.items())
        ]
        s.record_scores(
            model_hash,
            scores,
            task_revisions=dict.fromkeys(TASKS, "r1"),
            mteb_version="9.9",
            use_instructions=True,
        )
    return s


def kalm(*args: str) -> subprocess.CompletedProcess:
    """The CLI as in ``kalm … | cat``: no terminal on any stream, an 80-column environment."""
    env = dict(os.environ, COLUMNS="80", PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "kalm.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )


def test_piped_leaderboard_shows_every_score_in_full(store: ResultsStore, tmp_path: Path) -> None:
    output = kalm("results", "--store", str(store.path), "--chart", str(tmp_path / "lb.png")).stdout
    assert max(len(line) for line in output.splitlines()) <= 80, output
    printed = Counter(
        cell.strip()
        for line in output.splitlines()
        for cell in re.split(r"[│┃]", line)
        if SCORE.match(cell.strip())
    )
    board = build_leaderboard(store)
    expected = Counter(
        [pct(v) for v in board.entries["MTK"]]
        + [pct(v) for v in board.entries["MTY"]]
        + [pct(v) for column in board.per_family.columns for v in board.per_family[column]]
        + [pct(v) for column in board.per_task.columns for v in board.per_task[column]]
    )
    assert "100.00" in expected and len(expected) > 20
    assert printed == expected, output


def stored_rows(store: ResultsStore) -> list[tuple]:
    return sorted(
        store.query(
            """SELECT model_hash, task, task_revision, mteb_version, use_instructions, main_score_name,
                      main_score, task_type, split FROM evaluations"""
        )
    )


def test_json_and_csv_are_the_stored_rows(store: ResultsStore) -> None:
    from kalm.cli import app

    fields = ("model_hash", "task", "task_revision", "mteb_version", "use_instructions", "metric", "score")
    fields += ("task_type", "split")
    result = CliRunner().invoke(app, ["results", "--store", str(store.path), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(tuple(row[f] for f in fields) for row in rows) == stored_rows(store)
    assert {row["model_path"] for row in rows} == {f"/runs/a-long-run-name/checkpoints/{m}" for m in MODELS}

    result = CliRunner().invoke(app, ["results", "--store", str(store.path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    parsed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(parsed) == len(rows)
    for row, original in zip(parsed, rows, strict=True):
        assert row["task"] == original["task"] and float(row["score"]) == original["score"]
        assert json.loads(row["languages"]) == ["eng"]


def test_machine_formats_of_an_empty_store_are_empty(tmp_path: Path) -> None:
    from kalm.cli import app

    result = CliRunner().invoke(
        app, ["results", "--store", str(tmp_path / "none.duckdb"), "--format", "json"]
    )
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "no results" in result.stderr


def test_lineage_formats(tmp_path: Path) -> None:
    from kalm.cli import app
    from kalm.run.lineage import write_lineage

    root = tmp_path / "run"
    (root / "checkpoints" / "pretrain").mkdir(parents=True)
    write_lineage(
        root, "collect", {"output": str(root / "data"), "fingerprint": "c" * 64}, {}, {"source:a": "1" * 64}
    )
    write_lineage(
        root, "balance", {"output": str(root / "bal"), "fingerprint": "b" * 64}, {"collect": "c" * 64}, {}
    )
    summary = {"checkpoint": str(root / "checkpoints" / "pretrain"), "fingerprint": "p" * 64}
    write_lineage(root, "train-pretrain", summary, {"balance": "b" * 64}, {})
    write_lineage(root, "unrelated", {"output": str(root / "x"), "fingerprint": "u" * 64}, {}, {})

    artefact = str(root / "checkpoints" / "pretrain")
    result = CliRunner().invoke(app, ["lineage", artefact, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["step"] == "train-pretrain" and data["run_dir"] == str(root)
    assert list(data["lineage"]) == ["train-pretrain", "balance", "collect"]
    assert data["lineage"]["collect"]["inputs"] == {"source:a": "1" * 64}
    assert data["lineage"]["balance"] == json.loads((root / "lineage" / "balance.json").read_text())

    result = CliRunner().invoke(app, ["lineage", artefact, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["step"], r["parents"]) for r in rows] == [
        ("train-pretrain", "balance"),
        ("balance", "collect"),
        ("collect", ""),
    ]
    result = CliRunner().invoke(app, ["lineage", artefact, "--format", "markdown"])
    assert result.stdout.splitlines()[2].startswith("| train-pretrain | ")

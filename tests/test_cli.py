"""The CLI's error contract: bad input gives one line naming the source and the field, exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kalm.cli import app

runner = CliRunner()


def write_profile(tmp_path: Path, source: dict) -> Path:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"version": 1, "base_dir": ".", "sources": [source]}))
    profile = yaml.safe_load(Path("configs/demo.yaml").read_text())
    profile.update(name="bad", catalog=str(catalog), demo_data=False)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


SOURCE = {
    "name": "pairs",
    "stage": "pretrain",
    "category": "qa",
    "task_type": "retrieval",
    "languages": ["eng"],
    "loader": {"kind": "jsonl", "path": "pairs.jsonl"},
    "fields": {"query": "q", "positive": "p"},
}


def invoke(tmp_path: Path, profile: Path):
    return runner.invoke(
        app, ["collect", "--profile", str(profile), "--run-id", "x", "--runs-dir", str(tmp_path)]
    )


def test_unknown_catalog_field_is_one_line(tmp_path):
    result = invoke(tmp_path, write_profile(tmp_path, SOURCE | {"colour": "red"}))
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert "source 'pairs'" in result.output and "colour" in result.output


@pytest.mark.usefixtures("prefect_harness")  # the command runs a flow
def test_missing_input_file_is_one_line(tmp_path):
    """Inside a flow run too, the command's own output is the one error line."""
    result = invoke(tmp_path, write_profile(tmp_path, SOURCE))
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
    assert "source 'pairs'" in result.output and "pairs.jsonl" in result.output


def test_unknown_profile(tmp_path):
    result = runner.invoke(app, ["collect", "--profile", "nope"])
    assert result.exit_code == 1 and "profile 'nope' not found" in result.output


@pytest.mark.usefixtures("prefect_harness")  # the command runs a flow
def test_collect_command_writes_parquet(tmp_path):
    (tmp_path / "pairs.jsonl").write_text('{"q": "a question", "p": "an answer"}\n')
    result = invoke(tmp_path, write_profile(tmp_path, SOURCE))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "data" / "collected" / "pairs" / "part-00000.parquet").exists()

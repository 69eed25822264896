"""Per-step telemetry: the JSONL records, the MFU estimate, the throughput summary, the progress bar."""

from __future__ import annotations

import json
import time

import pytest

from kalm.report import training_markdown
from training.telemetry import CPU_PEAK_TFLOPS, ProgressBar, StepLog, peak_flops, summarize


def test_peak_flops_defaults_and_override():
    assert peak_flops(None, 2) == pytest.approx(2 * CPU_PEAK_TFLOPS * 1e12)  # no GPU here
    assert peak_flops(4.0, 3) == pytest.approx(12e12)


def test_step_log_writes_jsonl_and_estimates_mfu(tmp_path):
    path = tmp_path / "log" / "steps.jsonl"
    earlier = [
        {"step": 1, "loss": 2.0, "lr": 1e-3, "tokens": 10, "seconds": 1.0, "tokens_per_s": 10.0, "mfu": 0.1}
    ]
    log = StepLog(path, params=1000, peak=1e9, total=3, records=list(earlier))
    time.sleep(0.01)
    record = log.record(2, loss=1.5, lr=9e-4, tokens=500)
    assert record["mfu"] == pytest.approx(6 * 1000 * 500 / record["seconds"] / 1e9, rel=2e-2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2] and lines[1]["total_steps"] == 3
    summary = summarize(lines)
    assert summary["tokens_per_s"] == pytest.approx(500 / record["seconds"], rel=2e-2)  # the first is warm-up


def test_progress_bar_follows_a_step_log(tmp_path, capsys):
    path = tmp_path / "steps.jsonl"
    bar = ProgressBar("demo", enabled=True)
    bar.follow(path, interval=0.02)
    record = {"step": 1, "total_steps": 2, "loss": 1.0, "tokens_per_s": 5.0}
    path.write_text(json.dumps(record) + "\n" + json.dumps(record | {"step": 2}) + "\n")
    deadline = time.monotonic() + 5
    while (bar._bar is None or bar._bar.n < 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    bar.close()
    assert bar._bar.n == 2
    assert "demo" in capsys.readouterr().err
    assert not ProgressBar("quiet", enabled=False).enabled


def test_training_markdown_lists_the_telemetry():
    text = training_markdown(
        "finetune-seed0",
        {
            "metrics": {"steps": 3, "tokens_per_s": 12.5, "mfu": 0.001},
            "steps_log": "a.jsonl",
            "loss_curve": "b",
        },
    )
    assert "| tokens/s | 12.5 |" in text and "1.00e-03" in text and "a.jsonl" in text

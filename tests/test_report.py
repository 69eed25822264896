"""The run report renders every section from step summaries, and its figures travel with it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from kalm.report import render_report


def summaries() -> tuple[dict, dict, dict]:
    """Step summaries as a run records them (data steps, training, evaluation), without plot files."""
    collect = {
        "rows_by_category": {"qa": 10, "nli": 5},
        "rows_by_stage": {"finetune": 15},
        "quarantined": {"src": {"malformed_json": 2}},
    }
    dedup = {
        "stats": {
            "rows_in": 15,
            "exact_duplicates": 2,
            "near_duplicates": 1,
            "rows_out": 12,
            "per_category": {
                "qa": {"rows_in": 10, "exact": 2, "near": 0, "out": 8},
                "nli": {"rows_in": 5, "exact": 0, "near": 1, "out": 4},
            },
        }
    }
    decontaminate = {
        "stats": {
            "rows_in": 12,
            "rows_dropped": 1,
            "rows_out": 11,
            "eval_texts": 40,
            "per_task": {
                "DemoSTS": {"rows_dropped": 1, "exact": 1, "near": 0, "eval_texts": 40, "examples": []}
            },
            "per_category": {
                "qa": {"rows_in": 8, "contaminated": 1, "out": 7},
                "nli": {"rows_in": 4, "contaminated": 0, "out": 4},
            },
        }
    }
    balance = {
        "stats": {
            "stages": {
                "finetune": {
                    "qa": {"rows_before": 8, "rows_after": 6, "share_before": 0.5, "share_after": 0.5}
                }
            }
        }
    }
    trains = {
        "pretrain": {
            "metrics": {"steps": 3, "examples": 12, "final_loss": 0.5, "wall_time_s": 1.0},
            "losses": [2.0, 1.0, 0.5],
        }
    }
    score = {"main_score": 0.8123, "task_type": "STS", "main_score_name": "cosine_spearman"}
    evaluation = {
        "soup": {
            "scores": {"DemoSTS": score},
            "summary": {"mean_over_tasks": 0.8123, "mean_over_task_types": 0.8123},
        }
    }
    data = {"collect": collect, "dedup": dedup, "decontaminate": decontaminate, "balance": balance}
    return data, trains, evaluation


def test_report_sections_and_scores():
    data, trains, evaluation = summaries()
    markdown = render_report("r1", data, trains, evaluation)
    assert "# kalm-pipeline run `r1`" in markdown
    assert "| qa | 10 |" in markdown and "malformed_json: 2" in markdown
    assert "| finetune | 15 |" in markdown
    assert "15 rows in, 2 exact and 1 near duplicates removed, 12 rows out" in markdown
    assert "| finetune | qa | 8 | 6 | 0.5000 | 0.5000 |" in markdown
    assert "| pretrain | 3 | 12 | 2.0000 | 0.5000 | 1.0000 |" in markdown
    assert "| soup | 81.23 | 81.23 | 81.23 |" in markdown


def test_a_copied_report_renders_every_image(tmp_path: Path) -> None:
    """Copy report.md and its figures folder elsewhere, delete the run: every image link still resolves."""
    from kalm.mining.stats import Histogram, edges, histogram, plot_scores
    from training.telemetry import plot_loss_curve

    run = tmp_path / "run"
    data, trains, evaluation = summaries()
    data["dedup"]["stats"]["cluster_size_histogram"] = {2: 5, 3: 1}
    plot = run / "data" / "mined" / "score_hist.png"
    plot.parent.mkdir(parents=True)
    plot_scores(
        Histogram(edges=edges(), positive=histogram([0.8, 0.9]), negative=histogram([0.1, 0.3])), plot
    )
    stats = {"miner_checkpoint": "abc", "rows_mined": 2, "rows_exemplar": 0, "rows_filled_random": 0}
    stats |= {"positive_score_mean": 0.85, "negative_score_mean": 0.2, "dropped_examples": {}}
    data["mine"] = {"plot": str(plot), "stats": stats | {"rejected_candidates": {}}}
    curve = run / "checkpoints" / "pretrain" / "loss_curve.png"
    curve.parent.mkdir(parents=True)
    plot_loss_curve([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}], curve, "pretrain")
    trains["pretrain"]["loss_curve"] = str(curve)
    (run / "report.md").write_text(render_report("r1", data, trains, evaluation, figures_dir=run / "figures"))

    copy = tmp_path / "elsewhere" / "copy"
    copy.mkdir(parents=True)
    shutil.copy(run / "report.md", copy / "report.md")
    shutil.copytree(run / "figures", copy / "figures")
    shutil.rmtree(run)
    targets = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", (copy / "report.md").read_text())
    assert len(targets) == 3, targets  # duplicate clusters, mined scores, the loss curve
    for target in targets:
        assert not Path(target).is_absolute() and target.startswith("figures/"), target
        assert (copy / target).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target

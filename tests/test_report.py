"""The run report renders every section from step summaries."""

from __future__ import annotations

from kalm.report import render_report


def test_report_sections_and_scores():
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
    markdown = render_report("r1", data, trains, evaluation)
    assert "# kalm-pipeline run `r1`" in markdown
    assert "| qa | 10 |" in markdown and "malformed_json: 2" in markdown
    assert "| finetune | 15 |" in markdown
    assert "15 rows in, 2 exact and 1 near duplicates removed, 12 rows out" in markdown
    assert "| finetune | qa | 8 | 6 | 0.5000 | 0.5000 |" in markdown
    assert "| pretrain | 3 | 12 | 2.0000 | 0.5000 | 1.0000 |" in markdown
    assert "| soup | 81.23 | 81.23 | 81.23 |" in markdown

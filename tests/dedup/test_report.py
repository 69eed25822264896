"""Report material: markdown tables from stats dicts and the cluster-size PNG."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kalm.dedup import DedupStats
from kalm.dedup.report import (
    category_table_markdown,
    cluster_examples_markdown,
    contamination_markdown,
    write_cluster_histogram,
)
from tests.plots import bars, read_png

DEDUP = {
    "rows_in": 110,
    "exact_duplicates": 6,
    "near_duplicates": 4,
    "rows_out": 100,
    "per_category": {
        "retrieval": {"rows_in": 100, "exact": 5, "near": 4, "out": 91},
        "sts": {"rows_in": 10, "exact": 1, "near": 0, "out": 9},
    },
    "cluster_size_histogram": {"1": 95, "2": 3, "5": 1},
    "example_clusters": [["keeper text", "dup | one", "dup two"]],
}
DECONTAM = {
    "rows_in": 100,
    "rows_dropped": 2,
    "rows_out": 98,
    "eval_texts": 50,
    "per_task": {
        "SICK-R": {
            "eval_texts": 50,
            "rows_dropped": 2,
            "exact": 1,
            "near": 1,
            "examples": [
                {
                    "id": "a",
                    "field": "query",
                    "text": "x",
                    "eval_text": "X.",
                    "match": "exact",
                    "jaccard": 1.0,
                }
            ],
        }
    },
    "per_category": {"sts": {"rows_in": 9, "contaminated": 2, "out": 7}},
}
BALANCE = {
    "rows_in": 98,
    "rows_out": 60,
    "stages": {
        "pretrain": {
            "retrieval": {
                "rows_before": 91,
                "share_before": 1,
                "rows_capped": 91,
                "rows_after": 50,
                "share_after": 1,
            }
        },
        "finetune": {
            "sts": {"rows_before": 7, "share_before": 1, "rows_capped": 7, "rows_after": 7, "share_after": 1},
            "retrieval": {
                "rows_before": 0,
                "share_before": 0,
                "rows_capped": 0,
                "rows_after": 3,
                "share_after": 0,
            },
        },
    },
}


def test_category_table_all_steps_and_partial() -> None:
    md = category_table_markdown(DEDUP, DECONTAM, BALANCE)
    lines = md.strip().splitlines()
    assert lines[0] == "| category | rows in | exact dups | near dups | contaminated | after balance |"
    assert lines[2] == "| retrieval | 100 | 5 | 4 | 0 | 53 |"
    assert lines[3] == "| sts | 10 | 1 | 0 | 2 | 7 |"
    assert lines[4] == "| **total** | 110 | 6 | 4 | 2 | 60 |"
    only_dedup = category_table_markdown(DedupStats.model_validate(DEDUP))
    assert only_dedup.strip().splitlines()[-1] == "| **total** | 110 | 6 | 4 | — | — |"


def test_contamination_and_cluster_markdown() -> None:
    md = contamination_markdown(DECONTAM)
    assert "| SICK-R | 50 | 2 | 1 | 1 |" in md and "`a` query exact" in md
    assert "keeper: 'keeper text'" in cluster_examples_markdown(DEDUP)


def test_cluster_histogram_png(tmp_path: Path) -> None:
    """One bar per cluster size, heights on a log axis: h = a·log(count) + b, so height differences are
    proportional to log-count differences."""
    bar_colour = (0x4C, 0x72, 0xB0)
    heights = bars(read_png(write_cluster_histogram(DEDUP, tmp_path), (700, 350)), bar_colour)
    assert len(heights) == 3, heights  # sizes 1, 2 and 5
    one, two, five = heights
    assert (one - five) / (two - five) == pytest.approx(math.log(95) / math.log(3), rel=0.05)  # 95, 3, 1
    many = {str(s): 1 for s in range(1, 60)}  # > 20 sizes: power-of-two bins 1, 2, 3-4, ..., 33-64
    heights = bars(read_png(write_cluster_histogram(many, tmp_path, "many.png")), bar_colour)
    counts = [1, 1, 2, 4, 8, 16, 27]
    assert len(heights) == len(counts)
    for height, count in zip(heights[1:], counts[1:], strict=True):
        assert height - heights[0] == pytest.approx(
            (heights[-1] - heights[0]) * math.log(count) / math.log(27), abs=2
        )

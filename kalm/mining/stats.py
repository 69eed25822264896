"""Mining statistics: drops by reason, score histograms, and a PNG of positive vs negative scores.

Why histograms of the positive and the chosen negatives' scores: the filters exist to keep negatives below the
positive (false negatives score like positives), so the two distributions and their overlap are the quickest
check that a mining run did what its configuration says. Everything here is deterministic for a given input
(no timings, no timestamps in the PNG), so the output folder's fingerprint is stable across re-runs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

HIST_BINS = 40
HIST_RANGE = (-1.0, 1.0)  # cosine scores


class Histogram(BaseModel):
    edges: list[float]
    positive: list[int] = Field(description="this row's positive score, one per kept mined row")
    negative: list[int] = Field(description="the chosen negatives' scores")


class SourceMiningStats(BaseModel):
    rows_in: int = 0
    rows_out: int = 0
    pool_size: int = 0
    unique_queries: int = 0
    dropped_examples: dict[str, int] = Field(default_factory=dict)
    rejected_candidates: dict[str, int] = Field(default_factory=dict)
    rows_filled_random: int = 0
    rows_short: int = 0


class MiningStats(BaseModel):
    miner_checkpoint: str
    config_hash: str
    rows_in: int = Field(description="rows of the mined stage read")
    rows_out: int
    rows_mined: int = Field(description="rows whose negatives were mined (written)")
    rows_exemplar: int = Field(
        description="classification/clustering rows passed through with their negatives"
    )
    rows_other_stages: int = Field(description="rows of other stages, not written")
    dropped_examples: dict[str, int]
    rejected_candidates: dict[str, int]
    rows_filled_random: int
    random_negatives: int
    rows_short: int = Field(description="mined rows left with fewer than num_negatives negatives")
    positive_score_mean: float | None
    negative_score_mean: float | None
    histogram: Histogram
    sources: dict[str, SourceMiningStats]


def histogram(values: list[float] | np.ndarray) -> list[int]:
    counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=HIST_BINS, range=HIST_RANGE)
    return [int(c) for c in counts]


def edges() -> list[float]:
    return [round(float(e), 6) for e in np.linspace(*HIST_RANGE, HIST_BINS + 1)]


def merge_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return dict(sorted(total.items()))


def plot_scores(hist: Histogram, path: Path, title: str = "mined scores") -> None:
    """Overlaid (density-normalised) histograms of positive and negative scores, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = (np.asarray(hist.edges[:-1]) + np.asarray(hist.edges[1:])) / 2
    width = hist.edges[1] - hist.edges[0]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, counts, colour in (
        ("positive", hist.positive, "tab:green"),
        ("negative", hist.negative, "tab:red"),
    ):
        total = max(1, sum(counts))
        ax.bar(
            centres,
            np.asarray(counts) / total,
            width=width,
            alpha=0.5,
            color=colour,
            label=f"{name} (n={sum(counts)})",
        )
    ax.set_xlabel("cosine score with the query")
    ax.set_ylabel("share")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)

"""Report material for dedup / decontamination / balance: a cluster-size plot and markdown snippets.

Pure functions of the ``stats.json`` dicts (``model_dump(mode="json")`` of :class:`~kalm.dedup.DedupStats`,
:class:`~kalm.dedup.DecontaminationStats`, :class:`~kalm.balance.BalanceStats`), or of the models themselves,
so the run report and the Prefect artifact can be rebuilt from a run directory without re-running anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kalm.markdown import table


def _plain(stats: Any) -> Any:
    return stats.model_dump(mode="json") if isinstance(stats, BaseModel) else stats


def _histogram_bars(hist: Mapping[Any, int]) -> tuple[list[str], list[int]]:
    """One bar per size when there are few sizes, else power-of-two bins (1, 2, 3-4, 5-8, ...)."""
    sizes = sorted((int(s), int(c)) for s, c in hist.items())
    if len(sizes) <= 20:
        return [str(s) for s, _ in sizes], [c for _, c in sizes]
    bins: dict[int, int] = {}
    for s, c in sizes:
        bins[(s - 1).bit_length()] = bins.get((s - 1).bit_length(), 0) + c
    labels = []
    for b in sorted(bins):
        lo, hi = (1 << (b - 1)) + 1 if b else 1, 1 << b
        labels.append(str(hi) if lo >= hi else f"{lo}-{hi}")
    return labels, [bins[b] for b in sorted(bins)]


def write_cluster_histogram(
    hist: Mapping[Any, int] | Any, out_dir: Path, filename: str = "cluster_sizes.png"
) -> Path:
    """Bar chart (log count axis) of ``cluster size -> clusters``; accepts the histogram or a DedupStats."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plain = _plain(hist)
    if "cluster_size_histogram" in plain:
        plain = plain["cluster_size_histogram"]
    labels, counts = _histogram_bars(plain)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    try:
        ax.bar(range(len(counts)), counts, color="#4C72B0")
        ax.set_xticks(range(len(counts)), labels, rotation=45 if len(labels) > 10 else 0)
        if counts and max(counts) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("cluster size (rows sharing one kept representative)")
        ax.set_ylabel("clusters")
        ax.set_title("Duplicate cluster sizes")
        fig.tight_layout()
        path = Path(out_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path


def category_table_markdown(
    dedup: Mapping[str, Any] | Any,
    decontamination: Mapping[str, Any] | Any | None = None,
    balance: Mapping[str, Any] | Any | None = None,
) -> str:
    """Per category: rows in / exact dups / near dups / contaminated / after balance, plus a total row.

    Missing steps show "—". "after balance" sums a category over all stages of the balance stats.
    """
    dd = _plain(dedup)["per_category"]
    dc = _plain(decontamination)["per_category"] if decontamination is not None else None
    bal: dict[str, int] | None = None
    if balance is not None:
        bal = {}
        for cats in _plain(balance)["stages"].values():
            for cat, s in cats.items():
                bal[cat] = bal.get(cat, 0) + int(s["rows_after"])
    cats = sorted(set(dd) | set(dc or {}) | set(bal or {}))
    rows = []
    totals = [0, 0, 0, 0, 0]
    for cat in cats:
        d = dd.get(cat, {})
        vals = [
            d.get("rows_in", 0),
            d.get("exact", 0),
            d.get("near", 0),
            None if dc is None else dc.get(cat, {}).get("contaminated", 0),
            None if bal is None else bal.get(cat, 0),
        ]
        totals = [t + (v or 0) for t, v in zip(totals, vals, strict=True)]
        rows.append([cat, *("—" if v is None else f"{v:,}" for v in vals)])
    shown = [f"{t:,}" for t in totals[:3]]
    shown += ["—" if dc is None else f"{totals[3]:,}", "—" if bal is None else f"{totals[4]:,}"]
    rows.append(["**total**", *shown])
    headers = ["category", "rows in", "exact dups", "near dups", "contaminated", "after balance"]
    return table(headers, rows, "lrrrrr") + "\n"


def contamination_markdown(decontamination: Mapping[str, Any] | Any, max_examples: int = 3) -> str:
    """Per evaluation task: texts indexed, rows dropped (exact / near) and a few examples."""
    dc = _plain(decontamination)
    lines = [
        f"Rows dropped as evaluation leaks: **{dc['rows_dropped']:,}** of {dc['rows_in']:,} "
        f"({dc['eval_texts']:,} distinct evaluation texts indexed).",
        "",
        table(
            ["evaluation task", "texts indexed", "rows dropped", "exact", "near"],
            (
                [task, f"{s['eval_texts']:,}", f"{s['rows_dropped']:,}", f"{s['exact']:,}", f"{s['near']:,}"]
                for task, s in sorted(dc["per_task"].items())
            ),
            "lrrrr",
        ),
    ]
    if dc.get("unchecked"):
        lines += [
            "",
            f"**Not checked** (their texts could not be read, allowed by the profile): {', '.join(dc['unchecked'])}",
        ]
    for task, s in sorted(dc["per_task"].items()):
        if s["examples"][:max_examples]:
            lines += ["", f"Examples — {task}:", ""]
            for ex in s["examples"][:max_examples]:
                lines.append(
                    f"- `{ex['id']}` {ex['field']} {ex['match']} (J={ex['jaccard']:.2f}): "
                    f"{ex['text'][:120]!r} ↔ {ex['eval_text'][:120]!r}"
                )
    return "\n".join(lines) + "\n"


def cluster_examples_markdown(dedup: Mapping[str, Any] | Any, max_members: int = 3) -> str:
    """The largest duplicate clusters of a DedupStats, keeper first."""
    lines = []
    for k, members in enumerate(_plain(dedup)["example_clusters"], 1):
        lines.append(f"{k}. keeper: {members[0][:160]!r}")
        lines += [f"   - dup: {m[:160]!r}" for m in members[1:max_members]]
    return ("\n".join(lines) if lines else "_no duplicate clusters_") + "\n"

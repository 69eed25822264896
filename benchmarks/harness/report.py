"""Tables of the quality harness: per task, per task family, mean over tasks and over families (MTK/MTY).

Scores are mteb main scores ×100. Families are the task types (STS, Retrieval, Classification, ...), so the
mean over families weighs each type once however many tasks it has, as the paper's MTY does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kalm.markdown import table


@dataclass(frozen=True)
class RowScores:
    tasks: dict[str, float]
    families: dict[str, float]
    mean_tasks: float
    mean_families: float


def row_scores(evaluation: dict) -> tuple[RowScores, dict[str, str]]:
    """Scores of one evaluated model (an ``evaluate_model`` summary) and each task's family."""
    scores = evaluation["scores"]
    tasks = {t: 100.0 * s["main_score"] for t, s in sorted(scores.items())}
    family_of = {t: s["task_type"] for t, s in scores.items()}
    grouped: dict[str, list[float]] = {}
    for task, value in tasks.items():
        grouped.setdefault(family_of[task], []).append(value)
    families = {f: sum(v) / len(v) for f, v in sorted(grouped.items())}
    return (
        RowScores(
            tasks=tasks,
            families=families,
            mean_tasks=sum(tasks.values()) / len(tasks),
            mean_families=sum(families.values()) / len(families),
        ),
        family_of,
    )


def summarize(rows: dict[str, dict]) -> tuple[dict[str, RowScores], dict[str, str]]:
    """Every row's scores; all rows must cover the same tasks (else the means would not compare)."""
    out, family_of = {}, {}
    for name, evaluation in rows.items():
        out[name], family_of = row_scores(evaluation)
    task_sets = {tuple(r.tasks) for r in out.values()}
    if len(task_sets) > 1:
        raise ValueError(f"rows cover different task sets: {sorted(task_sets)}")
    return out, family_of


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _delta(value: float) -> str:
    return f"{value:+.2f}"


def main_table(rows: dict[str, RowScores], family_of: dict[str, str]) -> str:
    names = list(rows)
    body = [
        [task, family, *(_fmt(rows[n].tasks[task]) for n in names)]
        for task, family in sorted(family_of.items(), key=lambda x: (x[1], x[0]))
    ]
    body += [
        [f"*{family}*", "family mean", *(_fmt(rows[n].families[family]) for n in names)]
        for family in sorted(set(family_of.values()))
    ]
    body.append(["**mean over tasks**", "", *(f"**{_fmt(rows[n].mean_tasks)}**" for n in names)])
    body.append(["**mean over families**", "", *(_fmt(rows[n].mean_families) for n in names)])
    return table(["task", "family", *names], body, "ll" + "r" * len(names))


def verdicts(
    rows: dict[str, RowScores], base: str = "base", gain: float = 1.0, family_floor: float | None = 1.0
) -> list[str]:
    """Against the base: mean-over-tasks gain and the worst family's change, per non-base row.

    A row meets the target when it gains at least ``gain`` on the mean over tasks and, unless ``family_floor``
    is None, no family loses more than ``family_floor``.
    """
    ref = rows[base]
    target = f"≥ +{gain:.1f}" + (f", no family below −{family_floor:.1f}" if family_floor is not None else "")
    out = []
    for name, row in rows.items():
        if name == base:
            continue
        change = row.mean_tasks - ref.mean_tasks
        worst_family, worst = min(
            ((f, row.families[f] - ref.families[f]) for f in row.families), key=lambda x: x[1]
        )
        met = change >= gain and (family_floor is None or worst >= -family_floor)
        out.append(
            f"- {name}: mean {_delta(change)} vs base, worst family {worst_family} {_delta(worst)} → "
            f"target ({target}) {'met' if met else 'NOT met'}"
        )
    return out


def ablation_table(ablations: dict[str, tuple[RowScores, str]], rows: dict[str, RowScores]) -> str:
    """One row per ablation: its means and their change against its reference row of the full recipe."""
    body = []
    for name, (row, reference) in ablations.items():
        ref = rows[reference]
        changes = {f: row.families[f] - ref.families[f] for f in row.families}
        family = max(changes, key=lambda f: abs(changes[f]))
        body.append(
            [
                f"--{name}",
                f"{reference} ({_fmt(ref.mean_tasks)})",
                _fmt(row.mean_tasks),
                _delta(row.mean_tasks - ref.mean_tasks),
                _fmt(row.mean_families),
                _delta(row.mean_families - ref.mean_families),
                f"{family} {_delta(changes[family])}",
            ]
        )
    headers = ["variant", "compared with", "mean over tasks", "Δ", "mean over families", "Δ"]
    return table([*headers, "largest family change"], body, "llrrrrl")


def render(
    name: str,
    rows: dict[str, dict],
    ablations: dict[str, tuple[dict, str]],
    context: dict,
    target: tuple[float, float | None] = (1.0, 1.0),
) -> str:
    """The harness's Markdown: the main table, the target verdicts, the ablation table, data and config.

    ``rows`` and each ablation's first element are ``evaluate_model`` summaries; an ablation's second element
    names the main row it is compared with. ``target`` is (mean gain, family floor) for :func:`verdicts`.
    """
    scored, family_of = summarize(rows | {f"ablation {k}": v for k, (v, _) in ablations.items()})
    main = {k: scored[k] for k in rows}
    parts = [
        f"### Quality harness: {name}",
        "",
        f"`{context['command']}` — {context['machine']}; wall {context['wall_s']} s "
        f"(full-recipe run {context['full_run_wall_s']} s). Main scores ×100 on the shared eval tasks.",
        "",
        main_table(main, family_of),
        "",
        *verdicts(main, gain=target[0], family_floor=target[1]),
    ]
    if ablations:
        parts += [
            "",
            "Ablations: one switch off in the same profile, one seed, compared with the full recipe's seed-0 "
            "fine-tune (`--no-soup` is that fine-tune compared with the soup):",
            "",
            ablation_table({k: (scored[f"ablation {k}"], ref) for k, (_, ref) in ablations.items()}, main),
        ]
    parts += [
        "",
        f"Data: {json.dumps(context['data'])}",
        "",
        f"Config: `{json.dumps(context['config'], default=str)}`",
    ]
    return "\n".join(parts)

"""``group`` and ``explode``: an anchor with candidate texts, split into positives and (hard) negatives.

Both cast "one query, several judged candidates" data into KaLM rows: NLI premises with entailment /
contradiction hypotheses (grouped over records), TrecQA questions with correct / wrong answer sentences,
paraphrase pairs whose non-paraphrase pairs of the same sentence become hard negatives, and CLIMATE-FEVER
claims whose nested evidence list holds both (exploded within one record). ``group`` has to see every record
of a group, so it holds the source in memory; ``explode`` streams.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from data_catalog.catalog import Source
from data_catalog.loaders import RawRecord
from data_catalog.specs import Candidates
from data_catalog.transforms.base import (
    RecordProblem,
    Rejected,
    Row,
    Tally,
    check_text,
    matches,
    text_of,
)


@dataclass
class Group:
    anchor: str
    records: int = 0
    positives: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)


def classify(rules: Candidates, item: dict[str, Any]) -> str | None:
    """'positive', 'negative' or None (neither, e.g. a neutral hypothesis); RecordProblem if undecidable."""
    if matches(rules.positive, item):
        return "positive"
    if rules.negative is not None and matches(rules.negative, item):
        return "negative"
    return None


def emit(source: Source, rules: Candidates, key: str, group: Group, dropped: Tally) -> Iterator[Row]:
    """The rows of one finished group; a group without a positive is counted, not written."""
    if not group.positives:
        dropped["group_without_positive"] += group.records
        return
    positives = group.positives if rules.rows == "per_positive" else group.positives[:1]
    for index, positive in enumerate(positives):
        excluded = {group.anchor, positive}
        negatives = [n for n in dict.fromkeys(group.negatives) if n not in excluded]
        if rules.max_negatives is not None and len(negatives) > rules.max_negatives:
            # Seeded by source, group and row so reruns pick the same negatives; file order is kept.
            rng = random.Random(f"{source.name}:{key}:{index}")
            chosen = set(rng.sample(range(len(negatives)), rules.max_negatives))
            negatives = [n for i, n in enumerate(negatives) if i in chosen]
        yield Row(group.anchor, positive, negatives, None)


def group_rows(
    source: Source, records: Iterable[RawRecord], max_chars: int, dropped: Tally
) -> Iterator[Row | Rejected]:
    """Group records by ``group.by``; each record adds its ``fields.positive`` text as a candidate."""
    spec, fields = source.group, source.fields
    assert spec is not None  # guaranteed by Source validation
    groups: dict[tuple[str, ...], Group] = {}
    for item in records:
        if item.record is None:
            yield Rejected(item.row_number, item.error or "unreadable", item.raw)
            continue
        try:
            key = tuple("" if item.record[c] is None else str(item.record[c]) for c in spec.by)
            anchor = text_of(item.record, fields.query) or ""
            text = text_of(item.record, fields.positive) or ""
            kind = classify(spec, item.record)
        except KeyError as missing:
            yield Rejected(item.row_number, f"missing_field:{missing.args[0]}", item.raw)
            continue
        except RecordProblem as problem:
            yield Rejected(item.row_number, str(problem), item.raw)
            continue
        if kind is None:
            dropped["not_a_candidate"] += 1
            continue
        name = "positive" if kind == "positive" else "negatives"
        reason = check_text("query", anchor, max_chars) or check_text(name, text, max_chars)
        if reason:
            yield Rejected(item.row_number, reason, item.raw)
            continue
        group = groups.setdefault(key, Group(anchor))
        group.records += 1
        (group.positives if kind == "positive" else group.negatives).append(text)
    for key, group in groups.items():
        yield from emit(source, spec, "\x1f".join(key), group, dropped)


def explode_rows(
    source: Source, records: Iterable[RawRecord], max_chars: int, dropped: Tally
) -> Iterator[Row | Rejected]:
    """One record = one group: ``explode.column`` holds the candidate objects."""
    spec, fields = source.explode, source.fields
    assert spec is not None  # guaranteed by Source validation
    for item in records:
        if item.record is None:
            yield Rejected(item.row_number, item.error or "unreadable", item.raw)
            continue
        try:
            anchor = text_of(item.record, fields.query) or ""
            nested = item.record[spec.column]
            if not isinstance(nested, list) or not all(isinstance(c, dict) for c in nested):
                raise RecordProblem(f"not_a_list_of_objects:{spec.column}")
            candidates = [(classify(spec, c), text_of(c, fields.positive) or "") for c in nested]
        except KeyError as missing:
            yield Rejected(item.row_number, f"missing_field:{missing.args[0]}", item.raw)
            continue
        except RecordProblem as problem:
            yield Rejected(item.row_number, str(problem), item.raw)
            continue
        reason = check_text("query", anchor, max_chars)
        for kind, text in candidates:
            if reason is None and kind is not None:
                reason = check_text("positive" if kind == "positive" else "negatives", text, max_chars)
        if reason:
            yield Rejected(item.row_number, reason, item.raw)
            continue
        group = Group(anchor, records=1)
        for kind, text in candidates:
            if kind is not None:
                (group.positives if kind == "positive" else group.negatives).append(text)
        yield from emit(source, spec, str(item.row_number), group, dropped)

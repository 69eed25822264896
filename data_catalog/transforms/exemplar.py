"""``exemplar``: KaLM-V2's example-based labels for classification and clustering.

The positive is another text of the same class (not the label text: +8 clustering points in the paper's
ablation) and negatives are texts of other classes; the label is kept so training can mask same-label in-batch
negatives. Needs every text of a class before the first row, so the source is held in memory.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator

from data_catalog.catalog import Source
from data_catalog.loaders import RawRecord
from data_catalog.transforms.base import RecordProblem, Rejected, Row, check_text, record_texts


def exemplar_rows(
    source: Source, records: Iterable[RawRecord], max_chars: int, seed: int = 0
) -> Iterator[Row | Rejected]:
    """Classification/clustering rows as (text, same-class exemplar, other-class exemplars)."""
    fields = source.fields
    kept: list[tuple[int, str, str, str]] = []
    for item in records:
        try:
            text, label = record_texts(item, fields.text, fields.label)
        except RecordProblem as problem:
            yield Rejected(item.row_number, str(problem), item.raw)
            continue
        reason = check_text("text", text, max_chars) or check_text("label", label, max_chars)
        if reason:
            yield Rejected(item.row_number, reason, item.raw)
            continue
        kept.append((item.row_number, text, label, item.raw))

    by_label: dict[str, list[int]] = defaultdict(list)
    for index, (_, _, label, _) in enumerate(kept):
        by_label[label].append(index)
    labels = sorted(by_label)
    rng = random.Random(f"{source.name}:{seed}")
    for index, (row_number, text, label, raw) in enumerate(kept):
        peers = by_label[label]
        if len(peers) < 2:
            yield Rejected(row_number, "singleton_label", raw)
            continue
        pick = rng.randrange(len(peers) - 1)
        position = bisect.bisect_left(peers, index)  # peers is sorted: indices were appended in order
        positive = kept[peers[pick + (pick >= position)]][1]
        others = [other for other in labels if other != label]
        negatives = [
            kept[rng.choice(by_label[other])][1]
            for other in rng.sample(others, min(source.exemplar_negatives, len(others)))
        ]
        yield Row(text, positive, negatives, label)

"""``beir``: a BEIR-layout retrieval set (queries + qrels + corpus) joined into (query, document) rows.

The qrels and only the corpus documents they name are held in memory; the queries stream. Side tables are
reference data, so a broken line there fails the source (naming the file) instead of being quarantined.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from data_catalog.catalog import Source
from data_catalog.loaders import RawRecord, SourceError, iter_files, iter_huggingface
from data_catalog.specs import Candidates, FileLoader, Filter, HuggingFaceLoader, as_list
from data_catalog.transforms.base import Rejected, Row, Tally, check_text, text_of
from data_catalog.transforms.grouped import Group, emit

QRELS_COLUMNS = ["query-id", "corpus-id", "score"]


def _side(
    source: Source, spec: FileLoader | HuggingFaceLoader, root: Path, columns: list[str]
) -> Iterator[dict]:
    if isinstance(spec, HuggingFaceLoader):
        items = iter_huggingface(spec, root, source, columns)
    else:
        items = iter_files(spec, [(root / p).resolve() for p in as_list(spec.path)], source, columns)
    for item in items:
        if item.record is None:
            raise SourceError(f"source {source.name!r}: {spec.path} row {item.row_number}: {item.error}")
        yield item.record


def _qrels(source: Source, root: Path) -> dict[str, list[tuple[str, int]]]:
    assert source.beir is not None
    judged: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for record in _side(source, source.beir.qrels, root, QRELS_COLUMNS):
        try:
            score = int(float(record["score"]))
        except (KeyError, TypeError, ValueError):
            raise SourceError(f"source {source.name!r}: qrels line with a bad score: {record}") from None
        judged[str(record["query-id"])].append((str(record["corpus-id"]), score))
    return judged


def _documents(source: Source, root: Path, wanted: set[str]) -> dict[str, dict]:
    assert source.beir is not None
    return {
        str(record["_id"]): record
        for record in _side(source, source.beir.corpus, root, ["_id"])
        if str(record.get("_id")) in wanted
    }


def beir_rows(
    source: Source, records: Iterable[RawRecord], max_chars: int, dropped: Tally, root: Path
) -> Iterator[Row | Rejected]:
    spec, fields = source.beir, source.fields
    assert spec is not None  # guaranteed by Source validation
    judged = _qrels(source, root)
    documents = _documents(source, root, {doc for pairs in judged.values() for doc, _ in pairs})
    rules = Candidates(
        positive=Filter(column="score", at_least=spec.min_score),
        rows=spec.rows,
        max_negatives=spec.max_negatives,
    )
    for item in records:
        if item.record is None:
            yield Rejected(item.row_number, item.error or "unreadable", item.raw)
            continue
        try:
            query_id = str(item.record["_id"])
            query = text_of(item.record, fields.query) or ""
        except KeyError as missing:
            yield Rejected(item.row_number, f"missing_field:{missing.args[0]}", item.raw)
            continue
        if query_id not in judged:
            dropped["query_without_qrels"] += 1
            continue
        group, reason = Group(query, records=1), check_text("query", query, max_chars)
        for doc_id, score in judged[query_id]:
            if reason:
                break
            if doc_id not in documents:
                reason = f"missing_document:{doc_id}"
                break
            try:
                text = text_of(documents[doc_id], fields.positive) or ""
            except KeyError as missing:
                reason = f"missing_field:{missing.args[0]}"
                break
            relevant = score >= spec.min_score
            reason = check_text("positive" if relevant else "negatives", text, max_chars)
            (group.positives if relevant else group.negatives).append(text)
        if reason:
            yield Rejected(item.row_number, reason, item.raw)
            continue
        yield from emit(source, rules, query_id, group, dropped)

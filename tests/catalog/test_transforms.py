"""Filters and the group / explode / beir transforms on small hand-made fixtures (incl. bad rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from data_catalog.catalog import CatalogError, load_catalog
from data_catalog.collect import CollectError, collect_catalog

INSTRUCTION = "Retrieve semantically similar text"


def source(name: str, loader: dict, fields: dict, **extra) -> dict:
    return {
        "name": name,
        "stage": "finetune",
        "category": name,
        "task_type": "sts",
        "languages": ["eng"],
        "loader": loader,
        "fields": fields,
        "instruction": INSTRUCTION,
    } | extra


def write(tmp_path: Path, *sources: dict) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "sources": list(sources)}, allow_unicode=True))
    return path


def collect(tmp_path: Path, *sources: dict):
    return collect_catalog(load_catalog(write(tmp_path, *sources), base_dir=tmp_path), tmp_path / "out")


def rows(tmp_path: Path, name: str) -> list[dict]:
    return pq.read_table(tmp_path / "out" / name / "part-00000.parquet").to_pylist()


def jsonl(tmp_path: Path, name: str, records: list[dict | str]) -> dict:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    return {"kind": "jsonl", "path": name}


PAIRS = [
    {"q": "alpha", "p": "one", "label": 1, "score": "4.5"},
    {"q": "beta", "p": "two", "label": 0, "score": "1.0"},
    {"q": "gamma", "p": "", "label": 1, "score": "3.9"},
    {"q": "delta", "p": "four", "label": "1", "score": "n/a"},
]


@pytest.mark.parametrize(
    ("where", "queries", "dropped"),
    [
        ({"column": "label", "equals": 1}, ["alpha", "delta"], 1),
        ({"column": "label", "equals": "1"}, ["alpha", "delta"], 1),
        ({"column": "q", "in": ["alpha", "beta"]}, ["alpha", "beta"], 2),
        ({"column": "q", "not_in": ["alpha"]}, ["beta", "delta"], 1),
        ({"nonempty": "p"}, ["alpha", "beta", "delta"], 1),
        ([{"nonempty": "p"}, {"column": "label", "equals": 1}], ["alpha", "delta"], 2),
    ],
)
def test_where_filters(tmp_path, where, queries, dropped):
    loader = jsonl(tmp_path, "pairs.jsonl", PAIRS)
    manifest = collect(tmp_path, source("pairs", loader, {"query": "q", "positive": "p"}, where=where))
    got = manifest.sources["pairs"]
    assert [r["query"] for r in rows(tmp_path, "pairs")] == queries
    assert got.rows_dropped == dropped and got.rows_read == 4
    assert got.rows_written + got.rows_dropped + got.rows_quarantined == got.rows_read


def test_numeric_filter_quarantines_non_numbers(tmp_path):
    loader = jsonl(tmp_path, "pairs.jsonl", PAIRS)
    spec = source("pairs", loader, {"query": "q", "positive": "p"}, where={"column": "score", "at_least": 4})
    manifest = collect(tmp_path, spec)
    assert [r["query"] for r in rows(tmp_path, "pairs")] == ["alpha"]
    assert manifest.sources["pairs"].quarantine_reasons == {"not_a_number:score": 1}
    assert manifest.sources["pairs"].dropped_reasons == {"where:score": 2}


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"column": "label"}, "exactly one of"),
        ({"column": "label", "equals": 1, "in": [1]}, "exactly one of"),
        ({"equals": 1}, "needs 'column'"),
        ({"column": "label", "nonempty": "p"}, "drop 'column'"),
        ({"column": "label", "matches": "x"}, "matches"),
    ],
)
def test_bad_filter_names_source_and_field(tmp_path, where, message):
    spec = source("pairs", {"kind": "jsonl", "path": "x.jsonl"}, {"query": "q", "positive": "p"}, where=where)
    with pytest.raises(CatalogError, match=r"source 'pairs': field 'where") as error:
        load_catalog(write(tmp_path, spec))
    assert message in str(error.value)


def test_transform_options_must_match_transform(tmp_path):
    base = source("g", {"kind": "jsonl", "path": "x.jsonl"}, {"query": "q", "positive": "p"})
    with pytest.raises(CatalogError, match="transform 'group' needs a 'group' block"):
        load_catalog(write(tmp_path, base | {"transform": "group"}))
    group = {"by": "q", "positive": {"column": "label", "equals": 1}}
    with pytest.raises(CatalogError, match="only used with transform 'group'"):
        load_catalog(write(tmp_path, base | {"group": group}))
    with pytest.raises(CatalogError, match=r"source 'g': field 'group.positive'"):
        load_catalog(write(tmp_path, base | {"transform": "group", "group": {"by": "q"}}))


NLI = [
    {"premise": "A man plays.", "hypothesis": "A person plays.", "label": "entailment"},
    {"premise": "A man plays.", "hypothesis": "A man sleeps.", "label": "contradiction"},
    {"premise": "A man plays.", "hypothesis": "A man plays well.", "label": "neutral"},
    {"premise": "Dogs run.", "hypothesis": "Cats sit.", "label": "contradiction"},
    {"premise": "A man plays.", "hypothesis": "Someone plays.", "label": "entailment"},
    {"premise": "A man plays.", "hypothesis": "A man sleeps.", "label": "contradiction"},
    '{"premise": broken',
    {"premise": "Kids eat.", "hypothesis": "  ", "label": "entailment"},
    {"premise": "Kids eat.", "label": "entailment"},
]


def nli_source(tmp_path: Path, rows_mode: str, **group) -> dict:
    return source(
        "nli",
        jsonl(tmp_path, "nli.jsonl", NLI),
        {"query": "premise", "positive": "hypothesis"},
        transform="group",
        group={
            "by": "premise",
            "positive": {"column": "label", "equals": "entailment"},
            "negative": {"column": "label", "equals": "contradiction"},
            "rows": rows_mode,
        }
        | group,
    )


def test_group_by_premise_per_positive(tmp_path):
    manifest = collect(tmp_path, nli_source(tmp_path, "per_positive"))
    got = manifest.sources["nli"]
    assert [(r["query"], r["positive"], r["negatives"]) for r in rows(tmp_path, "nli")] == [
        ("A man plays.", "A person plays.", ["A man sleeps."]),  # duplicate contradiction kept once
        ("A man plays.", "Someone plays.", ["A man sleeps."]),
    ]
    assert got.rows_read == 9
    assert got.quarantine_reasons == {
        "malformed_json": 1,
        "empty_text:positive": 1,
        "missing_field:hypothesis": 1,
    }
    assert got.dropped_reasons == {"not_a_candidate": 1, "group_without_positive": 1}


def test_group_per_group_and_negative_cap_is_deterministic(tmp_path):
    collect(tmp_path, nli_source(tmp_path, "per_group"))
    assert [r["positive"] for r in rows(tmp_path, "nli")] == ["A person plays."]
    many = [{"q": "which?", "a": f"wrong {i}", "label": 0} for i in range(20)]
    many.insert(5, {"q": "which?", "a": "right", "label": 1})
    spec = source(
        "qa",
        jsonl(tmp_path, "qa.jsonl", many),
        {"query": "q", "positive": "a"},
        transform="group",
        group={
            "by": "q",
            "positive": {"column": "label", "equals": 1},
            "negative": {"column": "label", "equals": 0},
            "max_negatives": 3,
        },
    )
    collect(tmp_path, spec)
    first = rows(tmp_path, "qa")
    assert len(first) == 1 and first[0]["positive"] == "right" and len(first[0]["negatives"]) == 3
    collect_catalog(load_catalog(write(tmp_path, spec), base_dir=tmp_path), tmp_path / "again")
    assert pq.read_table(tmp_path / "again" / "qa" / "part-00000.parquet").to_pylist() == first


def test_group_on_tsv_without_header(tmp_path):
    (tmp_path / "pairs.tsv").write_text(
        "\ufeff1\t\ufeffhow to pay\tways to pay\t1\r\n2\thow to pay\tweather today\t0\r\n3\tbye\thi\t0\r\n"
    )
    loader = {
        "kind": "csv",
        "path": "pairs.tsv",
        "delimiter": "\t",
        "header": False,
        "column_names": ["id", "s1", "s2", "label"],
        "quoting": "none",
    }
    spec = source(
        "pairs",
        loader,
        {"query": "s1", "positive": "s2"},
        transform="group",
        group={
            "by": "s1",
            "positive": {"column": "label", "equals": 1},
            "negative": {"column": "label", "equals": 0},
            "rows": "per_positive",
        },
    )
    manifest = collect(tmp_path, spec)
    row = rows(tmp_path, "pairs")[0]
    assert (row["query"], row["positive"], row["negatives"]) == (
        "how to pay",
        "ways to pay",
        ["weather today"],
    )
    assert manifest.sources["pairs"].dropped_reasons == {"group_without_positive": 1}


def test_explode_nested_evidence(tmp_path):
    def ev(label: str, text: str) -> dict:
        return {"evidence_label": label, "evidence": text}

    claims = [
        {
            "claim": "Ice melts.",
            "evidences": [ev("SUPPORTS", "s1"), ev("NOT_ENOUGH_INFO", "n1"), ev("REFUTES", "r1")],
        },
        {"claim": "Nothing known.", "evidences": [ev("NOT_ENOUGH_INFO", "n2")]},
        {"claim": "Bad nesting.", "evidences": "not a list"},
        {"claim": "Missing text.", "evidences": [{"evidence_label": "SUPPORTS"}]},
    ]
    spec = source(
        "claims",
        jsonl(tmp_path, "claims.jsonl", claims),
        {"query": "claim", "positive": "evidence"},
        transform="explode",
        explode={
            "column": "evidences",
            "positive": {"column": "evidence_label", "in": ["SUPPORTS", "REFUTES"]},
            "negative": {"column": "evidence_label", "equals": "NOT_ENOUGH_INFO"},
            "rows": "per_positive",
        },
    )
    manifest = collect(tmp_path, spec)
    assert [(r["positive"], r["negatives"]) for r in rows(tmp_path, "claims")] == [
        ("s1", ["n1"]),
        ("r1", ["n1"]),
    ]
    got = manifest.sources["claims"]
    assert got.dropped_reasons == {"group_without_positive": 1}
    assert got.quarantine_reasons == {"not_a_list_of_objects:evidences": 1, "missing_field:evidence": 1}


def beir_source(tmp_path: Path, qrels: str, **beir) -> dict:
    jsonl(
        tmp_path,
        "corpus.jsonl",
        [
            {"_id": "d1", "title": "Doc one", "text": "first body"},
            {"_id": "d2", "title": "", "text": "second body"},
            {"_id": "d3", "title": "Doc three", "text": "third body"},
        ],
    )
    (tmp_path / "qrels.tsv").write_text(qrels)
    return source(
        "beir",
        jsonl(
            tmp_path,
            "queries.jsonl",
            [
                {"_id": "q1", "text": "claim one"},
                {"_id": "q2", "text": "claim two"},
                {"_id": "q3", "text": "claim without judgements"},
            ],
        ),
        {"query": "text", "positive": ["title", "text"]},
        transform="beir",
        task_type="retrieval",
        beir={
            "corpus": {"kind": "jsonl", "path": "corpus.jsonl"},
            "qrels": {"kind": "csv", "path": "qrels.tsv", "delimiter": "\t", "quoting": "none"},
        }
        | beir,
    )


def test_beir_join(tmp_path):
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td3\t0\nq2\td2\t2\nq2\td1\t1\n"
    manifest = collect(tmp_path, beir_source(tmp_path, qrels))
    assert [(r["query"], r["positive"], r["negatives"]) for r in rows(tmp_path, "beir")] == [
        ("claim one", "Doc one\n\nfirst body", ["Doc three\n\nthird body"]),
        ("claim two", "second body", []),
    ]
    assert manifest.sources["beir"].dropped_reasons == {"query_without_qrels": 1}
    collect_catalog(
        load_catalog(write(tmp_path, beir_source(tmp_path, qrels, rows="per_positive")), base_dir=tmp_path),
        tmp_path / "per_positive",
    )
    table = pq.read_table(tmp_path / "per_positive" / "beir" / "part-00000.parquet")
    assert table.column("positive").to_pylist() == [
        "Doc one\n\nfirst body",
        "second body",
        "Doc one\n\nfirst body",
    ]


def test_beir_missing_document_is_quarantined_and_bad_qrels_fail(tmp_path):
    qrels = "query-id\tcorpus-id\tscore\nq1\td9\t1\nq2\td2\t1\n"
    manifest = collect(tmp_path, beir_source(tmp_path, qrels))
    assert manifest.sources["beir"].quarantine_reasons == {"missing_document:d9": 1}
    broken = "query-id\tcorpus-id\tscore\nq1\td1\tone\n"
    with pytest.raises(CollectError, match=r"source 'beir': qrels line with a bad score"):
        collect(tmp_path, beir_source(tmp_path, broken))


def test_multiple_files_read_in_order(tmp_path):
    jsonl(tmp_path, "a.jsonl", [{"q": "a1", "p": "x"}, "{bad"])
    jsonl(tmp_path, "b.jsonl", [{"q": "b1", "p": "y"}])
    loader = {"kind": "jsonl", "path": ["a.jsonl", "b.jsonl"]}
    manifest = collect(tmp_path, source("two", loader, {"query": "q", "positive": "p"}))
    assert [r["query"] for r in rows(tmp_path, "two")] == ["a1", "b1"]
    quarantined = pq.read_table(tmp_path / "out" / "two" / "quarantine" / "part-00000.parquet").to_pylist()
    assert [r["row_number"] for r in quarantined] == [1]
    assert manifest.sources["two"].rows_read == 3

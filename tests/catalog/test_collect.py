"""Collection: every loader, the transforms, quarantine of bad rows, determinism and resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from data_catalog.catalog import load_catalog
from data_catalog.collect import CollectError, collect_catalog
from data_catalog.loaders import SourceError
from data_catalog.schema import CANONICAL_SCHEMA

INSTRUCTION = "Given a question, retrieve the answer"


def source(name: str, loader: dict, fields: dict, **extra) -> dict:
    return {
        "name": name,
        "stage": "finetune",
        "category": name,
        "task_type": "retrieval",
        "languages": ["eng"],
        "loader": loader,
        "fields": fields,
        "instruction": INSTRUCTION,
    } | extra


def collect(tmp_path: Path, *sources: dict, max_chars: int = 200):
    path = tmp_path / "catalog.yaml"
    path.write_text(
        yaml.safe_dump({"version": 1, "limits": {"max_text_chars": max_chars}, "sources": list(sources)})
    )
    return collect_catalog(load_catalog(path, base_dir=tmp_path), tmp_path / "out")


def rows(tmp_path: Path, name: str) -> list[dict]:
    table = pq.read_table(tmp_path / "out" / name / "part-00000.parquet")
    assert table.schema.equals(CANONICAL_SCHEMA, check_metadata=False)
    return table.to_pylist()


def quarantine(tmp_path: Path, name: str) -> list[dict]:
    return pq.read_table(tmp_path / "out" / name / "quarantine" / "part-00000.parquet").to_pylist()


def test_jsonl_gz_with_bad_rows_quarantined(tmp_path):
    lines = [
        json.dumps({"q": "what is a comet", "p": "an icy body"}),
        '{"q": "broken", ',
        json.dumps({"q": "   ", "p": "whitespace query"}),
        json.dumps({"q": "no positive"}),
        json.dumps({"q": "long", "p": "x" * 500}),
        json.dumps(["not", "an", "object"]),
    ]
    raw = ("\n".join(lines) + "\n").encode() + b'{"q": "bad bytes \xff\xfe", "p": "ok"}\n'
    (tmp_path / "qa.jsonl.gz").write_bytes(gzip.compress(raw))
    manifest = collect(
        tmp_path, source("qa", {"kind": "jsonl", "path": "qa.jsonl.gz"}, {"query": "q", "positive": "p"})
    )
    got = manifest.sources["qa"]
    assert got.rows_written == 1 and got.rows_quarantined == 6 and got.rows_read == 7
    assert got.quarantine_reasons == {
        "empty_text:query": 1,
        "malformed_json": 1,
        "missing_field:p": 1,
        "not_an_object": 1,
        "text_too_long:positive": 1,
        "undecodable_bytes:query": 1,
    }
    assert {r["reason"].split(":")[0] for r in quarantine(tmp_path, "qa")} >= {
        "malformed_json",
        "undecodable_bytes",
    }
    row = rows(tmp_path, "qa")[0]
    assert (
        row["query"] == "what is a comet"
        and row["id"] == "qa:000000000"
        and row["instruction"] == INSTRUCTION
    )


def test_csv_with_bom_quotes_and_short_row(tmp_path):
    text = '\ufeffquestion,answer\n"a, quoted question","an answer\nwith a newline"\nonly one field\n'
    (tmp_path / "qa.csv").write_text(text, encoding="utf-8")
    manifest = collect(
        tmp_path, source("qa", {"kind": "csv", "path": "qa.csv"}, {"query": "question", "positive": "answer"})
    )
    assert manifest.sources["qa"].rows_written == 1
    assert manifest.sources["qa"].quarantine_reasons == {"malformed_csv_row": 1}
    assert rows(tmp_path, "qa")[0]["positive"] == "an answer\nwith a newline"


def test_tsv_without_header(tmp_path):
    (tmp_path / "qa.tsv").write_text("1\tfirst question\tfirst answer\n2\tsecond question\tsecond answer\n")
    loader = {
        "kind": "csv",
        "path": "qa.tsv",
        "delimiter": "\t",
        "header": False,
        "column_names": ["id", "question", "answer"],
        "quoting": "none",
    }
    collect(tmp_path, source("qa", loader, {"query": "question", "positive": "answer"}))
    assert [r["query"] for r in rows(tmp_path, "qa")] == ["first question", "second question"]


def test_missing_csv_column_names_source_and_column(tmp_path):
    (tmp_path / "qa.csv").write_text("question,reply\nq,a\n")
    with pytest.raises(CollectError, match=r"qa: source 'qa': mapped column 'answer' is missing"):
        collect(
            tmp_path,
            source("qa", {"kind": "csv", "path": "qa.csv"}, {"query": "question", "positive": "answer"}),
        )


def test_missing_file_names_source_and_path(tmp_path):
    with pytest.raises(CollectError, match=r"source 'qa': input not found: .*absent.jsonl"):
        collect(
            tmp_path, source("qa", {"kind": "jsonl", "path": "absent.jsonl"}, {"query": "q", "positive": "p"})
        )


def test_one_failing_source_does_not_stop_the_others(tmp_path):
    (tmp_path / "good.jsonl").write_text(json.dumps({"q": "a question", "p": "an answer"}) + "\n")
    good = source("good", {"kind": "jsonl", "path": "good.jsonl"}, {"query": "q", "positive": "p"})
    bad = source("bad", {"kind": "jsonl", "path": "missing.jsonl"}, {"query": "q", "positive": "p"})
    with pytest.raises(CollectError, match="1 source") as error:
        collect(tmp_path, bad, good)
    assert "bad" in str(error.value) and "good:" not in str(error.value)
    assert (tmp_path / "out" / "good" / "manifest.json").exists()


def test_parquet_with_list_negatives_and_json_array(tmp_path):
    pq.write_table(
        pa.table({"q": ["q1", "q2"], "p": ["p1", "p2"], "n": [["n1", "n2"], []]}), tmp_path / "a.parquet"
    )
    (tmp_path / "b.json").write_text(json.dumps({"data": [{"q": "q3", "p": "p3", "n": "n3"}]}))
    collect(
        tmp_path,
        source(
            "a", {"kind": "parquet", "path": "a.parquet"}, {"query": "q", "positive": "p", "negatives": "n"}
        ),
        source(
            "b",
            {"kind": "json", "path": "b.json", "records_key": "data"},
            {"query": "q", "positive": "p", "negatives": "n"},
        ),
    )
    assert [r["negatives"] for r in rows(tmp_path, "a")] == [["n1", "n2"], []]
    assert rows(tmp_path, "b")[0]["negatives"] == ["n3"]


def test_title_and_body_are_concatenated(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"q": "q", "title": "Title", "body": "Body text"}) + "\n")
    collect(
        tmp_path,
        source("a", {"kind": "jsonl", "path": "a.jsonl"}, {"query": "q", "positive": ["title", "body"]}),
    )
    assert rows(tmp_path, "a")[0]["positive"] == "Title\n\nBody text"


def test_huggingface_loaders_on_local_data(tmp_path):
    dataset = datasets.Dataset.from_dict({"question": ["q1", "q2"], "answer": ["a1", "a2"]})
    dataset.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "hub").mkdir()
    dataset.to_parquet(str(tmp_path / "hub" / "train.parquet"))
    fields = {"query": "question", "positive": "answer"}
    collect(
        tmp_path,
        source("disk", {"kind": "huggingface_disk", "path": "saved"}, fields),
        source(
            "hub", {"kind": "huggingface", "path": "parquet", "data_files": ["hub/train.parquet"]}, fields
        ),
    )
    assert [r["query"] for r in rows(tmp_path, "disk")] == ["q1", "q2"]
    assert [r["positive"] for r in rows(tmp_path, "hub")] == ["a1", "a2"]


def test_exemplar_transform(tmp_path):
    lines = (
        ["text,label"] + [f"text {i} of {label},{label}" for label in "abc" for i in range(4)] + ["lonely,d"]
    )
    (tmp_path / "cls.csv").write_text("\n".join(lines) + "\n")
    spec = source(
        "cls",
        {"kind": "csv", "path": "cls.csv"},
        {"text": "text", "label": "label"},
        transform="exemplar",
        task_type="classification",
        exemplar_negatives=2,
    )
    manifest = collect(tmp_path, spec)
    assert manifest.sources["cls"].quarantine_reasons == {"singleton_label": 1}
    for row in rows(tmp_path, "cls"):
        assert row["positive"] != row["query"] and row["positive"].endswith(f"of {row['label']}")
        assert len(row["negatives"]) == 2
        assert all(not n.endswith(f"of {row['label']}") for n in row["negatives"])


def test_demo_collection_is_deterministic_and_resumes(demo_raw, tmp_path):
    resolved = load_catalog("data_catalog/demo.yaml", base_dir=demo_raw)
    first = collect_catalog(resolved, tmp_path / "a")
    second = collect_catalog(resolved, tmp_path / "b")
    assert first.fingerprint == second.fingerprint
    for name, manifest in first.sources.items():
        assert manifest.rows_written > 100
        for shard in manifest.shards:
            assert (tmp_path / "a" / name / shard.file).read_bytes() == (
                tmp_path / "b" / name / shard.file
            ).read_bytes()
    assert first.sources["demo_articles"].quarantine_reasons == {"malformed_json": 1}
    shard = tmp_path / "a" / "demo_forum" / "part-00000.parquet"
    before = shard.stat().st_mtime_ns
    collect_catalog(resolved, tmp_path / "a")
    assert shard.stat().st_mtime_ns == before, "a complete source must be skipped on re-run"


def test_unknown_hub_dataset_is_a_source_error(tmp_path):
    from data_catalog.catalog import Source
    from data_catalog.loaders import iter_records

    spec = Source.model_validate(
        source(
            "hub",
            {"kind": "huggingface", "path": "no-such-org/no-such-dataset"},
            {"query": "q", "positive": "p"},
        )
    )
    with pytest.raises(SourceError, match="source 'hub': cannot load dataset 'no-such-org/no-such-dataset'"):
        list(iter_records(spec, tmp_path / "no-such-org/no-such-dataset", tmp_path))


@pytest.mark.parametrize("streaming", [True, False])
def test_hub_loader_code_path_on_local_files(tmp_path, streaming):
    """The ``huggingface`` loader goes through ``datasets.load_dataset`` exactly as for a hub id."""
    dataset = datasets.Dataset.from_dict(
        {"question": ["q1", "q2", "q3"], "answer": ["a1", "", "a3"], "label": [1, 0, 1]}
    )
    (tmp_path / "hub").mkdir()
    dataset.to_parquet(str(tmp_path / "hub" / "train.parquet"))
    dataset.to_json(str(tmp_path / "hub" / "train.jsonl"))
    (tmp_path / "repo" / "data").mkdir(parents=True)
    dataset.to_parquet(str(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet"))
    fields = {"query": "question", "positive": "answer"}
    where = {"column": "label", "equals": 1}

    def hub(path: str, data_files: list[str] | None = None) -> dict:
        loader = {"kind": "huggingface", "path": path, "streaming": streaming}
        return loader | ({"data_files": data_files} if data_files else {})

    manifest = collect(
        tmp_path,
        source("pq", hub("parquet", ["hub/train.parquet"]), fields, where=where),
        source("js", hub("json", ["hub/train.jsonl"]), fields),
        source("repo", hub("repo"), fields),  # a local folder laid out like a hub dataset repo
    )
    assert [r["query"] for r in rows(tmp_path, "pq")] == ["q1", "q3"]
    assert manifest.sources["pq"].dropped_reasons == {"where:label": 1}
    assert manifest.sources["js"].quarantine_reasons == {"empty_text:positive": 1}
    assert [r["positive"] for r in rows(tmp_path, "repo")] == ["a1", "a3"]
    assert manifest.sources["js"].input_fingerprint != manifest.sources["pq"].input_fingerprint


def test_shards_are_bounded_and_written_in_row_groups(tmp_path):
    lines = [json.dumps({"q": f"question {i}", "p": f"answer {i}"}) for i in range(25)]
    (tmp_path / "qa.jsonl").write_text("\n".join(lines) + "\n")
    path = tmp_path / "catalog.yaml"
    spec = source("qa", {"kind": "jsonl", "path": "qa.jsonl"}, {"query": "q", "positive": "p"})
    limits = {"shard_rows": 10, "batch_rows": 4}
    path.write_text(yaml.safe_dump({"version": 1, "limits": limits, "sources": [spec]}))
    manifest = collect_catalog(load_catalog(path, base_dir=tmp_path), tmp_path / "out")
    shards = manifest.sources["qa"].shards
    assert [s.rows for s in shards] == [10, 10, 5]
    files = [pq.ParquetFile(tmp_path / "out" / "qa" / s.file) for s in shards]
    assert [f.metadata.num_row_groups for f in files] == [3, 3, 2]
    ids = [r["id"] for f in files for r in f.read().to_pylist()]
    assert ids == [f"qa:{i:09d}" for i in range(25)]

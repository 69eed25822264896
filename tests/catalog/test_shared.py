"""data_catalog/shared.yaml on the real files of ../shared/datasets/train.

Expected counts come from each SOURCE.md, or — where SOURCE.md states the rule but not the resulting number —
are recomputed here from the raw files with plain csv/json, independently of the collector's code.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_catalog.catalog import load_catalog
from data_catalog.collect import CatalogManifest, collect_catalog
from tests.conftest import needs_shared

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO.parent / "shared" / "datasets" / "train"
CATALOG = REPO / "data_catalog" / "shared.yaml"

pytestmark = needs_shared


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig").splitlines()


def _tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in _lines(path) if line]


def _csv(path: Path, header: bool = True) -> list[dict] | list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle)) if header else list(csv.reader(handle))


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _grouped_positive_rows(rows: list[tuple[str, str]], positive: str) -> tuple[int, int]:
    """(rows with the positive label, rows in groups that have no positive) for (key, label) pairs."""
    labels: dict[str, list[str]] = defaultdict(list)
    for key, label in rows:
        labels[key].append(label)
    positives = sum(group.count(positive) for group in labels.values())
    orphaned = sum(len(group) for group in labels.values() if positive not in group)
    return positives, orphaned


def expected() -> dict[str, dict[str, int]]:
    """rows read and written per source, from SOURCE.md facts and the raw files."""
    snli = [r for f in ("snli_dev.tsv", "snli_test.tsv") for r in _tsv(TRAIN / "snli_esnli" / f)[1:]]
    assert len(snli) == 9_841 + 9_824  # SOURCE.md: raw 9,842 dev (1 line removed) + 9,824 test
    atec = [[field.lstrip("\ufeff") for field in r] for r in _tsv(TRAIN / "atec" / "atec_nlp_sim_train.csv")]
    assert len(atec) == 39_346 and sum(r[3] == "1" for r in atec) == 8_549  # SOURCE.md's own numbers
    msrp = _tsv(TRAIN / "msrp" / "msr-para-train.tsv")[1:]
    trec = _csv(TRAIN / "trecqa_wang" / "train.csv")
    trec_with_positive = {r["qtext"] for r in trec if r["label"] == "1"}
    claims = _jsonl(TRAIN / "climate_fever" / "climate-fever.jsonl")
    relevant = {"SUPPORTS", "REFUTES"}
    ocnli = _jsonl(TRAIN / "ocnli" / "train.10k.json")
    stsb = _csv(TRAIN / "stsb_en" / "stsb-en-train.csv", header=False)
    news = _jsonl(TRAIN / "twenty_newsgroups" / "train.jsonl.gz")
    return {
        # premise → each entailment hypothesis (contradictions of the premise as negatives)
        "snli_esnli": {"read": 19_665, "written": sum(r[2] == "entailment" for r in snli)},
        # SOURCE.md: 16,407 rows have a non-empty answer
        "medquad": {"read": 47_441, "written": 16_407},
        # one row per SUPPORTS/REFUTES evidence sentence (7,675 claim–evidence pairs in all)
        "climate_fever": {
            "read": 1_535,
            "written": sum(e["evidence_label"] in relevant for c in claims for e in c["evidences"]),
        },
        # train only, '-' and neutral skipped, one row per entailment hypothesis
        "ocnli": {"read": 10_000, "written": sum(r["label"] == "entailment" for r in ocnli)},
        # SOURCE.md: 39,346 rows, label 1: 8,549
        "atec": {"read": 39_346, "written": 8_549},
        # SOURCE.md: 10,003 rows, 77 categories, every one with more than one example
        "banking77": {"read": 10_003, "written": 10_003},
        "twenty_newsgroups": {"read": 11_314, "written": sum(bool(r["subject"].strip()) for r in news)},
        # 5,117 kept lines; positives = score >= 4 on the 0–5 scale
        "stsb_en": {"read": 5_117, "written": sum(float(r[2]) >= 4.0 for r in stsb)},
        # 3,456 kept lines, one row per Quality-1 pair
        "msrp": {"read": 3_456, "written": sum(r[0] == "1" for r in msrp)},
        # 4,718 candidates for 93 questions → one row per question that has a correct answer
        "trecqa_wang": {"read": 4_718, "written": len(trec_with_positive)},
        # SOURCE.md: 807 train claims kept, each with qrels (917 lines)
        "scifact": {"read": 807, "written": 807},
    }


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> tuple[CatalogManifest, Path]:
    out = tmp_path_factory.mktemp("shared")
    return collect_catalog(load_catalog(CATALOG), out), out


def test_catalog_declares_all_eleven_sources():
    resolved = load_catalog(CATALOG)
    names = {s.name for s in resolved.catalog.sources}
    assert names == {p.name for p in TRAIN.iterdir() if p.is_dir()}
    assert resolved.root == TRAIN.resolve()
    for source in resolved.catalog.sources:
        assert source.stage.value == "finetune" and source.instruction and source.license != "unknown"


def test_counts_match_source_md(collected):
    manifest, _ = collected
    want = expected()
    got = {name: {"read": m.rows_read, "written": m.rows_written} for name, m in manifest.sources.items()}
    assert got == want
    assert all(m.rows_quarantined == 0 for m in manifest.sources.values())


def test_dropped_records_are_accounted_for(collected):
    manifest, _ = collected
    m = manifest.sources
    assert m["medquad"].dropped_reasons == {"where:answer": 47_441 - 16_407}
    trec = _csv(TRAIN / "trecqa_wang" / "train.csv")
    with_positive = {r["qtext"] for r in trec if r["label"] == "1"}
    assert m["trecqa_wang"].dropped_reasons == {
        "group_without_positive": sum(r["qtext"] not in with_positive for r in trec)
    }
    atec = [(r[1].lstrip("\ufeff"), r[3]) for r in _tsv(TRAIN / "atec" / "atec_nlp_sim_train.csv")]
    assert m["atec"].dropped_reasons == {"group_without_positive": _grouped_positive_rows(atec, "1")[1]}
    claims = _jsonl(TRAIN / "climate_fever" / "climate-fever.jsonl")
    no_relevant = sum(all(e["evidence_label"] == "NOT_ENOUGH_INFO" for e in c["evidences"]) for c in claims)
    assert m["climate_fever"].dropped_reasons == {"group_without_positive": no_relevant}


def _rows(out: Path, name: str) -> list[dict]:
    return pq.read_table(out / name / "part-00000.parquet").to_pylist()


def test_row_content(collected):
    _, out = collected
    atec = _rows(out, "atec")
    assert atec[0]["query"] == "怎么更改花呗手机号码"  # both BOMs of the first line stripped
    assert not any(r["query"].startswith("\ufeff") for r in atec)
    assert any(r["negatives"] for r in atec)  # label-0 pairs of the same sentence as hard negatives
    trec = _rows(out, "trecqa_wang")
    assert all(0 < len(r["negatives"]) <= 7 for r in trec if r["negatives"]) and trec[0]["negatives"]
    snli = _rows(out, "snli_esnli")[0]
    assert snli["query"] == "Two women are embracing while holding to go packages ."
    assert snli["positive"] == "Two woman are holding packages ."
    assert snli["negatives"] == ["The men are fighting outside a deli ."]
    scifact = _rows(out, "scifact")[0]
    corpus = {d["_id"]: d for d in _jsonl(TRAIN / "scifact" / "corpus.jsonl")}
    qrels = _tsv(TRAIN / "scifact" / "qrels" / "train.tsv")[1:]
    first_doc = corpus[next(r[1] for r in qrels if r[0] == "0")]
    assert scifact["query"] == "0-dimensional biomaterials lack inductive properties."
    assert scifact["positive"] == f"{first_doc['title']}\n\n{first_doc['text']}"
    climate = _rows(out, "climate_fever")[0]
    assert climate["negatives"] and climate["instruction"].startswith("Given a claim about climate change")
    banking = _rows(out, "banking77")
    assert len({r["label"] for r in banking}) == 77
    msrp = _rows(out, "msrp")
    assert any('"' in r["query"] for r in msrp)  # literal quotes survive (no CSV quoting)


def test_collecting_twice_is_byte_identical(tmp_path):
    resolved = load_catalog(CATALOG)
    names = ["atec", "trecqa_wang", "climate_fever"]
    first = collect_catalog(resolved, tmp_path / "a", only=names)
    second = collect_catalog(resolved, tmp_path / "b", only=names)
    assert first.fingerprint == second.fingerprint
    for name in names:
        for shard in first.sources[name].shards:
            assert (tmp_path / "a" / name / shard.file).read_bytes() == (
                tmp_path / "b" / name / shard.file
            ).read_bytes()

"""Catalog validation: every mistake gives one line that names the source and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from data_catalog.catalog import CatalogError, load_catalog

GOOD_SOURCE = {
    "name": "pairs",
    "stage": "finetune",
    "category": "qa",
    "task_type": "retrieval",
    "languages": ["eng"],
    "loader": {"kind": "jsonl", "path": "pairs.jsonl"},
    "fields": {"query": "q", "positive": "p"},
    "instruction": "Given a question, retrieve the answer",
}


def write_catalog(tmp_path: Path, *sources: dict) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "sources": list(sources)}))
    return path


def test_demo_catalog_validates():
    resolved = load_catalog("data_catalog/demo.yaml")
    stages = {s.stage.value for s in resolved.catalog.sources}
    assert stages == {"pretrain", "finetune"}
    pretrain = {s.category for s in resolved.catalog.sources if s.stage.value == "pretrain"}
    finetune = {s.task_type.value for s in resolved.catalog.sources if s.stage.value == "finetune"}
    assert len(pretrain) >= 2
    assert {"retrieval", "sts", "classification"} <= finetune


def test_unknown_field_names_source_and_field(tmp_path):
    path = write_catalog(tmp_path, GOOD_SOURCE | {"colour": "blue"})
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    message = str(error.value)
    assert "source 'pairs'" in message and "colour" in message
    assert "\n" not in message


def test_bad_enum_names_field(tmp_path):
    path = write_catalog(tmp_path, GOOD_SOURCE | {"task_type": "poetry"})
    with pytest.raises(CatalogError, match=r"source 'pairs': field 'task_type'"):
        load_catalog(path)


def test_finetune_source_needs_instruction(tmp_path):
    path = write_catalog(tmp_path, GOOD_SOURCE | {"instruction": ""})
    with pytest.raises(CatalogError, match="instruction"):
        load_catalog(path)


def test_transform_needs_its_fields(tmp_path):
    path = write_catalog(tmp_path, GOOD_SOURCE | {"transform": "exemplar"})
    with pytest.raises(CatalogError, match="exemplar"):
        load_catalog(path)


def test_duplicate_names_rejected(tmp_path):
    path = write_catalog(tmp_path, GOOD_SOURCE, GOOD_SOURCE)
    with pytest.raises(CatalogError, match="duplicate source name 'pairs'"):
        load_catalog(path)


def test_missing_catalog_file(tmp_path):
    with pytest.raises(CatalogError, match="catalog file not found"):
        load_catalog(tmp_path / "nope.yaml")


def test_relative_paths_resolve_against_base_dir(tmp_path):
    path = write_catalog(tmp_path, GOOD_SOURCE)
    resolved = load_catalog(path, base_dir=tmp_path / "data")
    assert resolved.path_of(resolved.catalog.sources[0]) == (tmp_path / "data" / "pairs.jsonl").resolve()

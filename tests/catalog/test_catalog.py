"""Catalog validation: every mistake gives one line that names the source and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from data_catalog.catalog import CatalogError, load_catalog
from data_catalog.collect import source_config_hash

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


def test_disabled_sources_are_skipped_unless_asked(tmp_path):
    off = GOOD_SOURCE | {"name": "leaky", "enabled": False, "note": "reads evaluation qrels"}
    path = write_catalog(tmp_path, GOOD_SOURCE, off)
    assert [s.name for s in load_catalog(path).catalog.sources] == ["pairs"]
    assert [s.name for s in load_catalog(path, include_disabled=True).catalog.sources] == ["pairs", "leaky"]


def test_disabled_source_needs_a_note(tmp_path):
    path = write_catalog(tmp_path, GOOD_SOURCE | {"enabled": False})
    with pytest.raises(CatalogError, match=r"source 'pairs'.*note"):
        load_catalog(path)


def test_all_disabled_is_an_error(tmp_path):
    path = write_catalog(tmp_path, GOOD_SOURCE | {"enabled": False, "note": "off"})
    with pytest.raises(CatalogError, match="every source is disabled"):
        load_catalog(path)
    assert len(load_catalog(path, include_disabled=True).catalog.sources) == 1


def test_checked_is_a_url_or_none_found(tmp_path):
    for mark in ("https://huggingface.co/datasets/x/y", "none found"):
        assert (
            load_catalog(write_catalog(tmp_path, GOOD_SOURCE | {"checked": mark})).catalog.sources[0].checked
        )
    with pytest.raises(CatalogError, match=r"source 'pairs': field 'checked'"):
        load_catalog(write_catalog(tmp_path, GOOD_SOURCE | {"checked": "looked at it"}))


def test_bookkeeping_fields_do_not_change_hashes(tmp_path):
    plain = load_catalog(write_catalog(tmp_path, GOOD_SOURCE))
    marked = load_catalog(write_catalog(tmp_path, GOOD_SOURCE | {"checked": "none found", "note": "n"}))
    assert plain.config_hash() == marked.config_hash()
    plain_source, marked_source = plain.catalog.sources[0], marked.catalog.sources[0]
    assert source_config_hash(plain_source, 100) == source_config_hash(marked_source, 100)
    renamed = load_catalog(write_catalog(tmp_path, GOOD_SOURCE | {"category": "other"})).catalog.sources[0]
    assert source_config_hash(renamed, 100) != source_config_hash(plain_source, 100)

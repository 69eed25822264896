"""data_catalog.check: the offline verdicts, on kalm_v2.yaml and on small bad catalogs."""

from __future__ import annotations

from pathlib import Path

from data_catalog.check import KALM_V2_REQUIREMENTS, Requirements, check_catalog
from tests.catalog.test_catalog import GOOD_SOURCE, write_catalog

KALM_V2 = Path(__file__).resolve().parents[2] / "data_catalog" / "kalm_v2.yaml"
CHECKED = GOOD_SOURCE | {"checked": "none found"}


def test_kalm_v2_passes_its_requirements():
    report = check_catalog(KALM_V2, KALM_V2_REQUIREMENTS)
    assert report.ok, report.problems
    assert report.stages["pretrain"].categories >= 20 and report.stages["finetune"].categories >= 100
    assert report.unchecked == [] and "trec_covid" in report.unverifiable
    assert {"trec_covid", "dbpedia", "arguana"} <= set(report.disabled)
    assert report.stages["finetune"].enabled == report.stages["finetune"].sources - len(report.disabled)


def test_duplicate_names_are_all_listed(tmp_path):
    other = CHECKED | {"name": "other"}
    report = check_catalog(write_catalog(tmp_path, CHECKED, other, CHECKED, other, CHECKED))
    assert not report.ok
    assert report.duplicate_names == ["other", "pairs"]
    assert "duplicate source name 'pairs' (3 times)" in report.problems
    assert report.schema_error and "duplicate source name" in report.schema_error


def test_missing_instructions_are_all_listed(tmp_path):
    bare = {k: v for k, v in CHECKED.items() if k != "instruction"}
    pretrain = bare | {"name": "pre", "stage": "pretrain"}
    report = check_catalog(
        write_catalog(tmp_path, bare, CHECKED | {"name": "blank", "instruction": "  "}, pretrain)
    )
    assert report.missing_instructions == ["pairs", "blank"]
    assert "source 'blank': its stage needs an instruction" in report.problems


def test_missing_checked_mark_fails_only_when_required(tmp_path):
    path = write_catalog(tmp_path, CHECKED, GOOD_SOURCE | {"name": "unmarked"})
    assert check_catalog(path).ok
    report = check_catalog(path, Requirements(require_checked=True))
    assert report.unchecked == ["unmarked"]
    assert report.problems == ["source 'unmarked': no checked: mark (a page URL or 'none found')"]


def test_category_minimums_count_enabled_sources_only(tmp_path):
    off = CHECKED | {"name": "off", "category": "other", "enabled": False, "note": "reads eval qrels"}
    path = write_catalog(tmp_path, CHECKED, off)
    report = check_catalog(path, Requirements(min_finetune_categories=2, min_pretrain_categories=1))
    assert report.stages["finetune"].model_dump() == {"sources": 2, "enabled": 1, "categories": 1}
    assert report.problems == [
        "pretrain: 0 categories among enabled sources, need at least 1",
        "finetune: 1 categories among enabled sources, need at least 2",
    ]


def test_schema_errors_and_unreadable_files_are_reported(tmp_path):
    report = check_catalog(write_catalog(tmp_path, CHECKED | {"colour": "blue"}))
    assert report.problems[0].startswith("schema:") and "colour" in report.problems[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text("sources: [\n")
    assert "cannot read the catalog" in (check_catalog(broken).schema_error or "")
    assert check_catalog(tmp_path / "absent.yaml").schema_error


def test_summary_names_counts_and_problems(tmp_path):
    lines = check_catalog(write_catalog(tmp_path, GOOD_SOURCE), Requirements(require_checked=True)).summary()
    assert "unchecked 1" in lines[0] and lines[-1] == "1 problem(s)"
    assert any(line.startswith("  finetune: 1 sources") for line in lines)

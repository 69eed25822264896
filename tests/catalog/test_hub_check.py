"""Online verdicts replayed on hub metadata recorded from public dataset pages (tests/catalog/fixtures/*.json).

Each fixture names the page it was copied from. No test here touches the hub.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from data_catalog.catalog import Source, load_catalog
from data_catalog.hub_check import HubMetadata, HubUnreachable, Problem, verify_catalog, verify_source
from data_catalog.hub_fetch import configs_from_card, configs_from_viewer, metadata_from_card

FIXTURES = Path(__file__).parent / "fixtures"
KALM_V2 = Path(__file__).resolve().parents[2] / "data_catalog" / "kalm_v2.yaml"
RECORDED = [
    "stackexchange-duplicates",
    "mteb-fever",
    "stanfordnlp-snli",
    "c-mteb-qbqtc",
    "kalm-pretrain-data",
]


def recorded(name: str) -> HubMetadata:
    fixture = json.loads((FIXTURES / f"{name}.json").read_text())
    assert fixture["source_url"].startswith("https://")
    if "metadata" in fixture:
        return HubMetadata.model_validate(fixture["metadata"])
    return metadata_from_card(fixture["repo_id"], fixture["card"], files=fixture["files"], sha=fixture["sha"])


HUB = {meta.repo_id: meta for meta in map(recorded, RECORDED)}
SOURCES = {s.name: s for s in load_catalog(KALM_V2, include_disabled=True).catalog.sources}


def changed(name: str, **loader: object) -> Source:
    """A kalm_v2 source with loader fields replaced, e.g. the config it had before the catalog was fixed."""
    source = SOURCES[name]
    return source.model_copy(update={"loader": source.loader.model_copy(update=loader)})


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("fever", "ok"),
        ("snli", "ok"),
        ("pretrain_reddit", "ok"),
        ("pretrain_paq", "ok"),
        ("pretrain_big_patent", "ok"),
        ("pretrain_zhihu_kol", "ok"),
        ("stackexchange_dup_titles", "warn"),  # right config; the card names no licence
        ("cqadupstack", "warn"),
    ],
)
def test_catalog_entries_match_recorded_metadata(name, status):
    verdict = verify_source(SOURCES[name], HUB)
    assert verdict.status == status, verdict.reason
    assert verdict.reason.startswith(f"source {name!r}: ")


def test_old_stackexchange_config_names_are_unknown():
    verdict = verify_source(changed("stackexchange_dup_titles", config="title-title"), HUB)
    assert verdict.status == "fail" and verdict.problems[0] == Problem.UNKNOWN_CONFIG
    assert "source 'stackexchange_dup_titles'" in verdict.reason
    assert "no config 'title-title' (body-body-pair, post-post-pair, title-title-pair)" in verdict.reason


def test_no_config_on_a_multi_config_repo_is_unknown():
    verdict = verify_source(changed("cqadupstack", config=None), HUB)
    assert verdict.problems[0] == Problem.UNKNOWN_CONFIG and "needs a config name" in verdict.reason


def test_qbqtc_train_split_does_not_exist():
    verdict = verify_source(SOURCES["qbqtc"], HUB)
    assert verdict.problems == [Problem.UNKNOWN_SPLIT, Problem.NO_LICENSE]
    assert "source 'qbqtc'" in verdict.reason and "has no split 'train' (test)" in verdict.reason


def test_beir_side_tables_are_checked():
    fever = SOURCES["fever"]
    assert fever.beir is not None
    bad_qrels = fever.beir.model_copy(
        update={"qrels": fever.beir.qrels.model_copy(update={"split": "validation"})}
    )
    verdict = verify_source(fever.model_copy(update={"beir": bad_qrels}), HUB)
    assert (
        verdict.problems == [Problem.UNKNOWN_SPLIT]
        and "'default' has no split 'validation'" in verdict.reason
    )
    no_title = fever.model_copy(
        update={"fields": fever.fields.model_copy(update={"positive": ["heading", "text"]})}
    )
    verdict = verify_source(no_title, HUB)
    assert verdict.problems == [Problem.MISSING_COLUMN] and "no column 'heading'" in verdict.reason


def test_missing_declared_column_names_the_column():
    snli = SOURCES["snli"]
    typo = snli.model_copy(update={"fields": snli.fields.model_copy(update={"positive": "hypothesis_text"})})
    verdict = verify_source(typo, HUB)
    assert verdict.problems == [Problem.MISSING_COLUMN]
    assert verdict.reason == "source 'snli': stanfordnlp/snli: no column 'hypothesis_text'"


def test_data_files_must_match_a_file():
    verdict = verify_source(changed("pretrain_reddit", data_files=["redit/*.parquet"]), HUB)
    assert verdict.problems == [Problem.MISSING_FILES] and "'redit/*.parquet'" in verdict.reason
    verdict = verify_source(changed("pretrain_reddit", split="test"), HUB)
    assert verdict.problems == [Problem.UNKNOWN_SPLIT]


def test_missing_repo_is_the_only_problem_reported():
    verdict = verify_source(
        SOURCES["paq"], {"sentence-transformers/paq": HubMetadata(repo_id="x", exists=False)}
    )
    assert verdict.problems == [Problem.MISSING_REPO]
    assert verdict.reason == "source 'paq': dataset repo sentence-transformers/paq does not exist"


def test_unknown_layout_checks_existence_and_licence_only():
    script_repo = HubMetadata(repo_id="miracl/miracl", exists=True, license="apache-2.0")
    assert verify_source(SOURCES["miracl_zh"], {"miracl/miracl": script_repo}).status == "ok"


def test_metadata_must_be_recorded_for_every_repo():
    with pytest.raises(KeyError, match="no hub metadata for 'mteb/fever'"):
        verify_source(SOURCES["fever"], {})


def test_card_parsing_on_recorded_cards():
    snli = HUB["stanfordnlp/snli"]
    assert snli.license == "cc-by-sa-4.0" and snli.configs is not None
    assert snli.configs["plain_text"].splits == ["test", "validation", "train"]
    assert snli.configs["plain_text"].columns == ["premise", "hypothesis", "label"]
    qbqtc = HUB["C-MTEB/QBQTC"].configs or {}
    assert qbqtc["default"].splits == ["test"] and qbqtc["default"].columns == [
        "sentence1",
        "sentence2",
        "score",
    ]
    assert configs_from_card({"license": "mit"}) is None
    plain = configs_from_card({"configs": [{"config_name": "x", "data_files": ["a.jsonl", "b.jsonl"]}]})
    assert plain is not None and plain["x"].splits == ["train"] and plain["x"].columns is None


def test_viewer_info_parsing_on_the_documented_answer():
    fixture = json.loads((FIXTURES / "viewer-info-duorc.json").read_text())
    configs = configs_from_viewer(fixture["payload"])
    assert configs is not None and list(configs) == ["SelfRC"]
    assert configs["SelfRC"].splits == ["train"] and "question" in (configs["SelfRC"].columns or [])
    per_dataset = configs_from_viewer({"dataset_info": {"SelfRC": fixture["payload"]["dataset_info"]}})
    assert per_dataset == configs
    assert configs_from_viewer({"dataset_info": {}}) is None


def subset_of_kalm_v2(tmp_path: Path, *names: str) -> Path:
    raw = yaml.safe_load(KALM_V2.read_text())
    raw["sources"] = [s for s in raw["sources"] if s["name"] in names]
    path = tmp_path / "subset.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_verify_catalog_fetches_each_repo_once_and_resolves_commits(tmp_path):
    path = subset_of_kalm_v2(tmp_path, "fever", "snli", "cqadupstack", "stackexchange_dup_titles", "qbqtc")
    asked: list[str] = []

    def fetch(repo_id: str) -> HubMetadata:
        asked.append(repo_id)
        return HUB[repo_id]

    report = verify_catalog(path, fetch=fetch)
    assert sorted(asked) == sorted(set(asked)) and "C-MTEB/QBQTC" not in asked  # qbqtc is disabled
    assert [v.status for v in report.verdicts] == ["ok", "warn", "warn", "ok"] and report.ok
    assert report.resolved == {
        "stackexchange_dup_titles": "41ca605998207953ca9381b64cddbaa41f3136c3",
        "cqadupstack": "41ca605998207953ca9381b64cddbaa41f3136c3",
        "snli": "cdb5c3d5eed6ead6e5a341c8e56e669bb666725b",
    }
    everything = verify_catalog(path, fetch=fetch, include_disabled=True)
    assert not everything.ok and everything.verdicts[-1].source == "qbqtc"
    lines = everything.summary()
    assert lines[-1] == "2 ok, 2 warn, 1 fail" and lines[-2].startswith("fail: source 'qbqtc': ")
    assert [line.split(":")[0] for line in lines[:-1]] == ["warn", "warn", "fail"]


def test_unreachable_hub_stops_at_the_first_repo(tmp_path):
    path = subset_of_kalm_v2(tmp_path, "fever", "snli")
    calls: list[str] = []

    def fetch(repo_id: str) -> HubMetadata:
        calls.append(repo_id)
        raise HubUnreachable(f"{repo_id}: no route to host")

    with pytest.raises(HubUnreachable, match="mteb/fever: no route to host"):
        verify_catalog(path, fetch=fetch)
    assert calls == ["mteb/fever"]


def test_fetch_metadata_refuses_quickly_when_offline(monkeypatch):
    from huggingface_hub import HfApi

    from data_catalog.hub_fetch import fetch_metadata

    monkeypatch.setattr(HfApi, "dataset_info", lambda *a, **k: pytest.fail("the hub was asked"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(HubUnreachable, match="HF_HUB_OFFLINE"):
        fetch_metadata("mteb/fever")
    assert time.monotonic() - started < 1

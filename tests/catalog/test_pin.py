"""pin_catalog: only revision values change; comments, flow maps and wrapping stay as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from data_catalog.catalog import CatalogError, HuggingFaceLoader, load_catalog
from data_catalog.pin import pin_catalog

KALM_V2 = Path(__file__).resolve().parents[2] / "data_catalog" / "kalm_v2.yaml"
SNLI_SHA = "cdb5c3d5eed6ead6e5a341c8e56e669bb666725b"  # commits seen in the fixtures' page URLs
PRETRAIN_SHA = "a6ff41ac9aeeea0c1ea16ab8b5054a341e8166ec"
QBQTC_SHA = "790b0510dc52b1553e8c49f3d2afb48c0e5c48b7"
RESOLVED = {
    "pretrain_reddit": PRETRAIN_SHA,  # block-style loader
    "snli": SNLI_SHA,  # flow-style loader
    "fever": QBQTC_SHA,  # BEIR: queries, corpus and qrels loaders
    "contractnli_permissible_post_agreement_possession": SNLI_SHA,  # flow map wrapped over two lines
}


def pinned_catalog(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "pinned.yaml"
    path.write_text(text)
    return {s.name: s for s in load_catalog(path, include_disabled=True).catalog.sources}


def test_pins_kalm_v2_touching_only_revisions(tmp_path):
    pinned = pin_catalog(KALM_V2, RESOLVED)
    unpinned_text = re.sub(
        r"\n +revision: [0-9a-f]{40}(?=\n)", "", re.sub(r", revision: [0-9a-f]{40}", "", pinned)
    )
    assert unpinned_text == KALM_V2.read_text()  # comments, flow maps and wrapping untouched
    assert pinned.count("revision: ") == KALM_V2.read_text().count("revision: ") + 6
    sources = pinned_catalog(tmp_path, pinned)
    fever = sources["fever"]
    assert fever.beir is not None
    for loader in (fever.loader, fever.beir.corpus, fever.beir.qrels):
        assert isinstance(loader, HuggingFaceLoader) and loader.revision == QBQTC_SHA
    assert sources["pretrain_reddit"].loader.revision == PRETRAIN_SHA  # type: ignore[union-attr]
    assert sources["snli"].loader.revision == SNLI_SHA  # type: ignore[union-attr]
    unpinned = [s for name, s in sources.items() if name not in RESOLVED]
    assert all(s.loader.revision is None for s in unpinned)  # type: ignore[union-attr]
    assert "path: mteb/fever, revision: 790b0510" in pinned


def test_pinning_again_replaces_the_commit_in_place(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text(pin_catalog(KALM_V2, RESOLVED))
    again = pin_catalog(first, dict.fromkeys(RESOLVED, PRETRAIN_SHA))
    assert len(again.splitlines()) == len(first.read_text().splitlines())
    sources = pinned_catalog(tmp_path, again)
    assert {sources[name].loader.revision for name in RESOLVED} == {PRETRAIN_SHA}  # type: ignore[union-attr]


def test_comments_inside_a_source_survive(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "# why this catalog exists\n"
        "version: 1\n"
        "sources:\n"
        "- name: a  # first\n"
        "  stage: pretrain\n"
        "  category: c\n"
        "  task_type: retrieval\n"
        "  languages: [eng]\n"
        "  loader:\n"
        "    kind: huggingface\n"
        "    path: org/a  # the hub repo\n"
        "  fields: {query: q, positive: p}\n"
        "- name: b\n"
        "  stage: pretrain\n"
        "  category: c\n"
        "  task_type: retrieval\n"
        "  languages: [eng]\n"
        "  loader: {kind: huggingface, path: org/b, revision: null}  # unpinned\n"
        "  fields: {query: q, positive: p}\n"
    )
    digits = "1234567890" * 4
    pinned = pin_catalog(path, {"a": PRETRAIN_SHA, "b": digits})
    assert f"    path: org/a  # the hub repo\n    revision: {PRETRAIN_SHA}\n" in pinned
    assert f"revision: '{digits}'}}  # unpinned\n" in pinned
    assert pinned.startswith("# why this catalog exists\n")
    sources = pinned_catalog(tmp_path, pinned)
    assert sources["b"].loader.revision == digits  # type: ignore[union-attr]


def test_unknown_sources_and_branch_names_are_refused():
    with pytest.raises(CatalogError, match="no source named 'nope'"):
        pin_catalog(KALM_V2, {"nope": SNLI_SHA})
    with pytest.raises(CatalogError, match="not a full commit sha for 'snli'"):
        pin_catalog(KALM_V2, {"snli": "main"})

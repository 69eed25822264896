"""fetch_metadata's glue, with HfApi replaced: errors become one HubUnreachable line, answers become metadata."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx2
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.repocard_data import DatasetCardData

from data_catalog import hub_fetch
from data_catalog.hub_check import ConfigInfo, HubUnreachable
from data_catalog.hub_fetch import fetch_metadata

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def answer(monkeypatch, result=None, error=None):
    def dataset_info(self, repo_id, **kwargs):
        if error is not None:
            raise error
        return result

    monkeypatch.setattr(HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(hub_fetch, "_viewer_configs", lambda repo_id, timeout: pytest.fail("viewer asked"))


def test_connection_error_is_one_line(monkeypatch):
    answer(monkeypatch, error=httpx2.ConnectError("[Errno 111] Connection refused\nmore detail"))
    with pytest.raises(HubUnreachable) as caught:
        fetch_metadata("mteb/fever")
    assert str(caught.value) == "mteb/fever: [Errno 111] Connection refused"


def test_missing_repo_is_metadata_not_an_error(monkeypatch):
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/datasets/x/y"))
    answer(monkeypatch, error=RepositoryNotFoundError("404 not found", response=response))
    meta = fetch_metadata("x/y")
    assert not meta.exists and meta.configs is None


def test_card_files_and_commit_become_metadata(monkeypatch):
    card = json.loads((FIXTURES / "stanfordnlp-snli.json").read_text())["card"]
    info = SimpleNamespace(
        card_data=DatasetCardData(**card),
        siblings=[
            SimpleNamespace(rfilename="README.md"),
            SimpleNamespace(rfilename="plain_text/train-0.parquet"),
        ],
        sha="cdb5c3d5eed6ead6e5a341c8e56e669bb666725b",
    )
    answer(monkeypatch, result=info)
    meta = fetch_metadata("stanfordnlp/snli")
    assert meta.exists and meta.license == "cc-by-sa-4.0" and meta.sha == info.sha
    assert meta.files == ["README.md", "plain_text/train-0.parquet"]
    assert meta.configs is not None and meta.configs["plain_text"].columns == [
        "premise",
        "hypothesis",
        "label",
    ]


def test_viewer_is_asked_only_when_the_card_lists_no_configs(monkeypatch):
    answer(monkeypatch, result=SimpleNamespace(card_data=None, siblings=[], sha="0" * 40))
    asked = []
    monkeypatch.setattr(
        hub_fetch,
        "_viewer_configs",
        lambda repo_id, timeout: asked.append(repo_id) or {"x": ConfigInfo(splits=["a"])},
    )
    meta = fetch_metadata("bare/repo")
    assert asked == ["bare/repo"] and meta.configs == {"x": ConfigInfo(splits=["a"])} and meta.license is None

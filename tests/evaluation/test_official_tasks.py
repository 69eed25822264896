"""Official mteb tasks and benchmarks by name: metadata-only resolution, close-match errors, and a fast, clear
failure when the hub is off and the data is not cached. Everything here runs offline and must not open a
single network connection."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import mteb
import pytest
from mteb.types import PromptType

from kalm.evaluation import (
    TaskDataUnavailable,
    TaskSelectionError,
    load_official_data,
    official_revision,
    resolve_official_tasks,
    select_tasks,
)
from kalm.evaluation.encoder import task_instruction
from kalm.results import official_task_refs


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every outgoing connection attempt is recorded and refused."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"test forbids network access (tried {address!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts


def test_benchmark_and_tasks_resolve_without_loading_data(no_network: list[object]) -> None:
    tasks = resolve_official_tasks(["MTEB(eng, v1)"], ["STSBenchmark", "NFCorpus"])
    expected = [t.metadata.name for t in mteb.get_benchmark("MTEB(eng, v1)").tasks]
    names = [t.metadata.name for t in tasks]
    assert names == expected  # both named tasks are in the benchmark: kept once, in benchmark order
    assert {"STSBenchmark", "NFCorpus", "SciFact"} <= set(names)
    assert not any(t.data_loaded for t in tasks)
    refs = {ref.name: ref for ref in official_task_refs(tasks)}
    nfcorpus = next(t for t in tasks if t.metadata.name == "NFCorpus")
    assert refs["NFCorpus"].revision == nfcorpus.metadata.dataset["revision"]
    assert refs["NFCorpus"].type == "Retrieval" and refs["STSBenchmark"].type == "STS"
    assert no_network == []


def test_tasks_alone_keep_the_given_order_and_mteb_prompts() -> None:
    sts, nfcorpus = resolve_official_tasks(tasks=["STSBenchmark", "NFCorpus", "STSBenchmark"])
    assert (sts.metadata.name, nfcorpus.metadata.name) == ("STSBenchmark", "NFCorpus")
    # NFCorpus carries its own query prompt; documents stay bare (KaLM-V2)
    assert task_instruction(nfcorpus.metadata, PromptType.query) == nfcorpus.metadata.prompt["query"]
    assert task_instruction(nfcorpus.metadata, PromptType.document) == ""
    # STSBenchmark has none: mteb's default for the task type, on both sides
    assert task_instruction(sts.metadata, None) == "Retrieve semantically similar text."


def test_partial_task_of_a_benchmark_gets_its_own_revision() -> None:
    (partial,) = [t for t in mteb.get_benchmark("MTEB(eng, v2)").tasks if t.metadata.name == "STS17"]
    (full,) = resolve_official_tasks(tasks=["STS17"])
    assert partial.hf_subsets == ["en-en"] and len(full.hf_subsets) > 1
    assert official_revision(full) == full.metadata.dataset["revision"]
    assert official_revision(partial).startswith(full.metadata.dataset["revision"] + "+")


def test_unknown_names_are_one_error_with_close_matches() -> None:
    with pytest.raises(TaskSelectionError) as info:
        resolve_official_tasks(["MTEB(eng v1)"], ["STSBenchmrk", "NFCorpus", "zzzz-no-such-task"])
    message = str(info.value)
    assert "\n" not in message
    assert "unknown mteb benchmark 'MTEB(eng v1)' (close matches: MTEB(eng, v1)" in message
    assert "unknown task 'STSBenchmrk' (close matches: STSBenchmark" in message
    assert "unknown task 'zzzz-no-such-task' (no close match)" in message
    assert "NFCorpus" not in message


def test_local_names_win_and_clashes_are_refused(small_tasks_dir: Path) -> None:
    selection = select_tasks(small_tasks_dir, ["MSRP", "NFCorpus"])
    assert selection.tasks_dir == small_tasks_dir and selection.local_names == ["MSRP"]
    assert selection.official_names == ["NFCorpus"]
    official_only = select_tasks(small_tasks_dir, ["NFCorpus"])
    assert official_only.tasks_dir is None and official_only.official_names == ["NFCorpus"]
    with pytest.raises(TaskSelectionError, match=r"unknown task 'MSRPP' \(close matches: MSRP"):
        select_tasks(small_tasks_dir, ["MSRPP"])
    # the shared datasets hold STSBenchmark under its MTEB name: one selection cannot have both
    with pytest.raises(TaskSelectionError, match=r"STSBenchmark.*both local tasks"):
        select_tasks(small_tasks_dir, None, ["MTEB(eng, v1)"])


def test_offline_data_load_fails_fast_naming_the_task(
    no_network: list[object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # the project default, set before the HF libraries were imported
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty-cache")  # nothing cached
    (task,) = resolve_official_tasks(tasks=["NFCorpus"])
    started = time.monotonic()
    with pytest.raises(TaskDataUnavailable) as info:
        load_official_data(task)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert message.startswith("mteb task 'NFCorpus': data mteb/nfcorpus@")
    assert "could not be downloaded" in message and "HF_HUB_OFFLINE" in message and "\n" not in message
    assert no_network == [] and not task.data_loaded

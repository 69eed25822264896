"""Re-evaluation picks exactly the missing/stale pairs, evaluates them, and a second run does nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kalm.hashing import hash_directory
from kalm.results import ResultsStore, evaluate_with_store, plan_reevaluation, reevaluate_all
from tests.results.conftest import CountingEmbedder, linked_copy


@pytest.fixture
def registry(minilm_path: Path, tiny_tasks_dir: Path, tmp_path: Path) -> dict[str, str]:
    """Two real models (MiniLM, a linked variant with another hash), one already scored on STSBenchmark,
    and a registered model whose folder is gone."""
    store = ResultsStore(tmp_path / "results.duckdb")
    a = linked_copy(minilm_path, tmp_path / "models" / "a")
    b = linked_copy(minilm_path, tmp_path / "models" / "b", marker="variant")
    gone = linked_copy(minilm_path, tmp_path / "models" / "gone", marker="gone")
    hashes = {"a": hash_directory(a), "b": hash_directory(b), "gone": hash_directory(gone)}
    evaluate_with_store(a, tiny_tasks_dir, tmp_path / "eval-a", store=store, task_names=["STSBenchmark"])
    store.register_model(hashes["b"], b, stage="finetune-seed1")
    store.register_model(hashes["gone"], gone)
    shutil.rmtree(gone)  # removes the links, not the MiniLM files they point to
    return hashes


def test_plan_is_exactly_the_missing_pairs(
    registry: dict[str, str], tiny_tasks_dir: Path, tmp_path: Path
) -> None:
    store = ResultsStore(tmp_path / "results.duckdb")
    plan = plan_reevaluation(store, tiny_tasks_dir)
    a, b, gone = registry["a"], registry["b"], registry["gone"]
    assert sorted(plan.pairs) == sorted(
        [(a, "MSRP"), (b, "MSRP"), (b, "STSBenchmark"), (gone, "MSRP"), (gone, "STSBenchmark")]
    )
    only_sts = plan_reevaluation(store, tiny_tasks_dir, ["STSBenchmark"])
    assert sorted(only_sts.pairs) == sorted([(b, "STSBenchmark"), (gone, "STSBenchmark")])


def test_reevaluation_is_idempotent(
    registry: dict[str, str], tiny_tasks_dir: Path, tmp_path: Path, counting: type[CountingEmbedder]
) -> None:
    store = ResultsStore(tmp_path / "results.duckdb")
    first = reevaluate_all(store, tiny_tasks_dir, embedder_factory=counting)
    a, b, gone = registry["a"], registry["b"], registry["gone"]
    assert first["evaluated"] == {a: ["MSRP"], b: ["MSRP", "STSBenchmark"]}
    assert first["skipped"] == {gone: f"{tmp_path / 'models' / 'gone'} no longer exists"}
    assert counting.constructed == 2
    assert (tmp_path / "reevaluate" / b[:16] / "results" / "MSRP.json").exists()

    counting.reset()
    second = reevaluate_all(store, tiny_tasks_dir, embedder_factory=counting)
    assert second["evaluated"] == {}
    assert counting.constructed == 0 and counting.encoded == 0
    assert [p[0] for p in second["planned"]] == [gone, gone]  # only the unscorable model remains


def test_overwritten_folder_is_not_scored_under_the_old_hash(
    minilm_path: Path, tiny_tasks_dir: Path, tmp_path: Path, counting: type[CountingEmbedder]
) -> None:
    store = ResultsStore(tmp_path / "results.duckdb")
    folder = linked_copy(minilm_path, tmp_path / "ckpt", marker="v1")
    store.register_model(hash_directory(folder), folder)
    (folder / "variant.txt").write_text("v2")  # retrained in place
    summary = reevaluate_all(store, tiny_tasks_dir, ["STSBenchmark"], embedder_factory=counting)
    assert summary["evaluated"] == {} and "different model" in next(iter(summary["skipped"].values()))
    assert counting.constructed == 0


@pytest.mark.usefixtures("prefect_harness")  # the second run is a real flow run, which publishes artifacts
def test_flow_runs_the_plan(registry: dict[str, str], tiny_tasks_dir: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.reevaluate import reevaluate

    store = tmp_path / "results.duckdb"
    first = reevaluate.fn(tasks_dir=str(tiny_tasks_dir), task_names=["STSBenchmark"], store=str(store))
    assert first["evaluated"] == {registry["b"]: ["STSBenchmark"]}
    state = reevaluate(
        tasks_dir=str(tiny_tasks_dir), task_names=["STSBenchmark"], store=str(store), return_state=True
    )
    assert state.result()["evaluated"] == {}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    published = {a.key: a.data for a in artifacts}
    assert "| model | tasks | MTK | MTY |" in published["kalm-leaderboard"]
    rows = json.loads(published["kalm-leaderboard-summary"])
    assert [row["tasks"] for row in rows] == [1, 1] and all(0 <= row["MTK"] <= 100 for row in rows)


def test_nightly_deployment_is_declared() -> None:
    import yaml
    from prefect.client.schemas.schedules import CronSchedule

    from kalm.settings import PROJECT_ROOT

    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    (nightly,) = [d for d in config["deployments"] if d["entrypoint"] == "flows/reevaluate.py:reevaluate"]
    assert nightly["name"] == "nightly"
    assert nightly["schedules"][0]["cron"] == "0 3 * * *"
    assert nightly["work_pool"]["name"] == "kalm-process"
    CronSchedule(**nightly["schedules"][0])  # what `prefect deploy` builds from it

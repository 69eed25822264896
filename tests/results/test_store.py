"""The DuckDB results store: round trip, registry upserts, missing/stale detection, waiting out a writer."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from kalm.evaluation import TaskScore
from kalm.results import ResultsStore, TaskRef, build_leaderboard, default_store_path, open_store

STS = TaskScore(
    task="STSB",
    task_type="STS",
    languages=["eng"],
    main_score_name="cosine_spearman",
    main_score=0.8,
    split="test",
)
RET = TaskScore(
    task="Sci",
    task_type="Retrieval",
    languages=["eng"],
    main_score_name="ndcg_at_10",
    main_score=0.6,
    split="test",
)
STS_JSON = {
    "dataset_revision": "r1",
    "task_name": "STSB",
    "mteb_version": "9.9",
    "scores": {
        "test": [
            {
                "cosine_spearman": 0.8,
                "cosine_pearson": 0.79,
                "main_score": 0.8,
                "hf_subset": "default",
                "languages": ["eng-Latn"],
                "mteb_version": "9.9",
                "scores_per_experiment": [{"x": 1.0}],
            }
        ]
    },
}
REFS = [TaskRef("STSB", "STS", "r1"), TaskRef("Sci", "Retrieval", "r2")]


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(tmp_path / "results.duckdb")
    s.register_model("m1", "/models/one", stage="finetune-seed0", run_id="run1")
    s.record_scores(
        "m1",
        {"STSB": STS, "Sci": RET},
        task_revisions={"STSB": "r1", "Sci": "r2"},
        mteb_version="9.9",
        use_instructions=True,
        results={"STSB": STS_JSON},
    )
    return s


def test_absent_store_reads_empty(tmp_path: Path) -> None:
    s = ResultsStore(tmp_path / "none.duckdb")
    assert s.models() == []
    assert s.lookup("m", REFS, mteb_version="9.9", use_instructions=True) == {}
    assert s.missing_pairs(["m"], REFS, mteb_version="9.9") == [("m", "STSB"), ("m", "Sci")]
    assert build_leaderboard(s).empty
    assert not (tmp_path / "none.duckdb").exists()


def test_default_store_lives_in_the_state_dir(private_state_dir: Path) -> None:
    assert default_store_path() == private_state_dir / "results.duckdb"
    assert open_store(None).path == private_state_dir / "results.duckdb"


def test_round_trip(store: ResultsStore) -> None:
    found = store.lookup("m1", REFS, mteb_version="9.9", use_instructions=True)
    assert found["STSB"].score == STS
    assert found["Sci"].score == RET
    assert found["STSB"].result_json == STS_JSON
    assert found["Sci"].result_json is None
    metrics = dict(store.query("SELECT metric, value FROM scores WHERE task = 'STSB'"))
    # every top-level numeric metric of the mteb JSON, nothing nested
    assert metrics == {"cosine_spearman": 0.8, "cosine_pearson": 0.79, "main_score": 0.8}
    assert dict(store.query("SELECT metric, value FROM scores WHERE task = 'Sci'")) == {
        "ndcg_at_10": 0.6,
        "main_score": 0.6,
    }
    row = store.query(
        "SELECT split, subset, mteb_version, task_revision, use_instructions FROM scores LIMIT 1"
    )
    assert row[0][:2] == ("test", "default")


def test_recording_again_replaces(store: ResultsStore) -> None:
    better = STS.model_copy(update={"main_score": 0.9})
    store.record_scores(
        "m1", [better], task_revisions={"STSB": "r1"}, mteb_version="9.9", use_instructions=True
    )
    assert store.lookup("m1", REFS[:1], mteb_version="9.9", use_instructions=True)["STSB"].score == better
    assert store.query("SELECT count(*) FROM evaluations WHERE task = 'STSB'") == [(1,)]
    assert store.query("SELECT count(*) FROM scores WHERE task = 'STSB'") == [(2,)]


def test_registry_keeps_lineage_and_follows_the_path(store: ResultsStore) -> None:
    store.register_model("m1", "/models/moved", stage="soup-candidate")
    store.register_model("m2", "/models/soup", stage="soup", parents=["m1", "m0"])
    one, two = store.models()
    assert (one.model_hash, one.path, one.stage, one.run_id) == (
        "m1",
        "/models/moved",
        "finetune-seed0",
        "run1",
    )
    assert (two.parents, two.stage, two.run_id) == (("m1", "m0"), "soup", None)


def test_missing_and_stale_pairs(store: ResultsStore) -> None:
    assert store.missing_pairs(["m1"], REFS, mteb_version="9.9") == []
    assert store.missing_pairs(["m1", "m2"], REFS, mteb_version="9.9") == [("m2", "STSB"), ("m2", "Sci")]
    # a revised task is stale for that task only
    revised = [TaskRef("STSB", "STS", "r1-new"), REFS[1]]
    assert store.missing_pairs(["m1"], revised, mteb_version="9.9") == [("m1", "STSB")]
    # a new mteb version makes everything stale
    assert store.missing_pairs(["m1"], REFS, mteb_version="10.0") == [("m1", "STSB"), ("m1", "Sci")]
    # scores without instructions do not stand in for scores with them
    assert store.missing_pairs(["m1"], REFS, mteb_version="9.9", use_instructions=False) == [
        ("m1", "STSB"),
        ("m1", "Sci"),
    ]
    assert store.lookup("m1", revised, mteb_version="9.9", use_instructions=True).keys() == {"Sci"}


def test_a_failed_write_leaves_nothing(store: ResultsStore) -> None:
    with pytest.raises(KeyError):  # no revision for the second task: the whole call rolls back
        store.record_scores(
            "m3", [STS, RET], task_revisions={"STSB": "r1"}, mteb_version="9.9", use_instructions=True
        )
    assert store.query("SELECT count(*) FROM evaluations WHERE model_hash = 'm3'") == [(0,)]


def test_reader_waits_for_another_process_writing(store: ResultsStore) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"con = duckdb.connect({str(store.path)!r})\n"
            "con.execute('BEGIN TRANSACTION')\n"
            "print('locked', flush=True)\n"
            "time.sleep(1.5)\n"
            "con.execute('COMMIT'); con.close()\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert [m.model_hash for m in store.models()] == ["m1"]
        assert time.monotonic() - started > 0.3  # it really had to wait for the lock
    finally:
        holder.wait(timeout=30)

"""Safe to operate: a cache hit proves its outputs, and one run at a time per run directory (real processes)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kalm.run.outputs import outputs_problem, outputs_record
from kalm.run.paths import RunPaths
from kalm.settings import PROJECT_ROOT
from tests.conftest import SMALL_RUN_THREADS

pytestmark = pytest.mark.slow


def fingerprint(run_dir: Path) -> dict[str, str]:
    """sha256 of every data and checkpoint file of a run (what must come back byte for byte). Mined rows
    name the miner by its absolute path, so between two run folders they are compared without that column."""
    files = [*run_dir.glob("data/**/*.parquet"), *run_dir.glob("checkpoints/*/model.safetensors")]
    out = {}
    for file in sorted(files):
        if file.parent.name == "mined":
            table = pq.read_table(file).drop_columns(["miner_checkpoint"])
            out[str(file.relative_to(run_dir))] = hashlib.sha256(str(table.to_pylist()).encode()).hexdigest()
        else:
            out[str(file.relative_to(run_dir))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def task_states(state) -> list[tuple[str, str]]:
    """(task run name, state name) of every task run of a flow run (a repaired step has two runs).

    Task run states reach the API as events, written a moment after the flow returns: wait for all of them.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=flow_run)
        if all(run.state is not None and run.state.is_final() for run in runs) or time.monotonic() > deadline:
            return [(run.name, run.state.name if run.state else "no state") for run in runs]
        time.sleep(1)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_outputs_are_repaired_by_exactly_their_steps(small_run):
    from flows.full_run import full_run

    profile, run_dir = small_run
    before = fingerprint(run_dir)
    (run_dir / "data" / "balanced" / "part-00000.parquet").unlink()
    flip_byte(run_dir / "data" / "collected" / "demo_forum" / "part-00000.parquet")
    flip_byte(run_dir / "checkpoints" / "finetune-seed1" / "model.safetensors")
    manifest = run_dir / "data" / "collected" / "demo_nli" / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])

    state = full_run(profile=str(profile), run_id="s", runs_dir=str(run_dir.parent), return_state=True)
    assert state.is_completed(), state.message
    ran = {  # task run names end in a random suffix, but a source's collection is named after the source
        name if name.startswith("collect-demo") else name.rsplit("-", 1)[0]
        for name, s in task_states(state)
        if s != "Cached"
    }
    # each damaged step, the collect summary (its input manifests carry wall times) and the report (the
    # fine-tune's summary carries its wall time): nothing else, in particular no other training stage
    assert ran == {"collect-demo_forum", "collect-demo_nli", "collect", "balance", "train", "report"}
    assert sum(s != "Cached" for name, s in task_states(state) if name.startswith("train")) == 1
    assert fingerprint(run_dir) == before


def test_a_second_run_after_repair_is_all_cached(small_run):
    from flows.full_run import full_run

    profile, run_dir = small_run
    state = full_run(profile=str(profile), run_id="s", runs_dir=str(run_dir.parent), return_state=True)
    assert {s for _, s in task_states(state)} == {"Cached"}


def test_stat_check_hashes_only_moved_files_and_full_check_hashes_all(tmp_path):
    run = RunPaths(tmp_path)
    (tmp_path / "data").mkdir()
    shard = tmp_path / "data" / "a.parquet"
    shard.write_bytes(b"0123456789")
    record = outputs_record(run, [tmp_path / "data"])
    assert outputs_problem(run, record) is None
    stat = shard.stat()
    os.utime(shard, ns=(1, 1))  # same bytes, new mtime (a copy or restore): hashed, still the same
    assert outputs_problem(run, record) is None
    shard.write_bytes(b"0123456780")  # same size; mtime put back: only a full check sees it
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert outputs_problem(run, record) is None
    assert "changed content" in outputs_problem(run, record, full=True)
    (tmp_path / "data" / "b.parquet").write_bytes(b"x")
    assert outputs_problem(run, outputs_record(run, [shard])) is None  # a file, not its folder, was recorded
    assert outputs_problem(run, record) == "data/b.parquet was not written by this step"
    shard.unlink()
    assert outputs_problem(run, record) == "data/a.parquet is missing"


def kalm(args: list[str], log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}  # own ephemeral API
    env["OMP_NUM_THREADS"] = str(SMALL_RUN_THREADS)  # compared byte for byte with the small run
    return subprocess.Popen(
        [sys.executable, "-m", "kalm.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_holder(lock: Path, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + 240
    while True:
        text = lock.read_text() if lock.exists() else ""
        if text:
            return json.loads(text)
        assert process.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.2)


def test_two_runs_on_one_run_directory(small_run, tmp_path):
    """A whole (small) run holds the directory for about a minute: long enough for the second to find it."""
    profile, lone = small_run
    runs = tmp_path / "runs"
    first = kalm(
        ["run", "--profile", str(profile), "--runs-dir", str(runs), "--run-id", "s"], tmp_path / "1.log"
    )
    holder = wait_for_holder(runs / "s" / ".lock", first, tmp_path / "1.log")
    assert holder["pid"] == first.pid
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "kalm.cli",
            "collect",
            "--profile",
            str(profile),
            "--runs-dir",
            str(runs),
            "--run-id",
            "s",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")},
    )
    assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
    # checked before the second's flow starts: one line, nothing else
    assert second.stderr.startswith(f"error: run 's' is in use by pid {first.pid} on "), second.stderr[-2000:]
    assert second.stderr.count("\n") == 1 and second.stdout == "", second.stdout + second.stderr
    assert first.wait(timeout=600) == 0, (tmp_path / "1.log").read_text()[-2000:]
    assert fingerprint(runs / "s") == fingerprint(lone)


def test_a_killed_holder_does_not_block_the_next_run(small_run, tmp_path):
    profile, _ = small_run
    runs = tmp_path / "runs"
    first = kalm(
        ["run", "--profile", str(profile), "--runs-dir", str(runs), "--run-id", "k"], tmp_path / "1.log"
    )
    wait_for_holder(runs / "k" / ".lock", first, tmp_path / "1.log")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    args = ["collect", "--profile", str(profile), "--runs-dir", str(runs), "--run-id", "k"]
    again = kalm(args, tmp_path / "again.log")
    assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-2000:]
    assert list((runs / "k" / "data" / "collected").glob("*/part-*.parquet"))


def test_the_flow_itself_takes_the_lock(prefect_harness, tmp_path):
    """The CLI checks first for a clean message; the flow's own lock is what keeps two runs apart."""
    from flows.build_data import build_data
    from kalm.run.lock import RunLocked, run_lock

    run = RunPaths(tmp_path / "runs" / "held")
    with run_lock(run, flow_run="someone else"):
        state = build_data(profile="demo", run_id="held", runs_dir=str(tmp_path / "runs"), return_state=True)
    assert state.is_failed()
    with pytest.raises(RunLocked, match=r"run 'held' is in use by pid \d+ .*flow run 'someone else'"):
        state.result()
    assert not (run.root / "data").exists()

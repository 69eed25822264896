"""File shuffles on storage every Ray node sees, and stages of Ray tasks that may be rerun on another node.

Why files on shared storage and not Ray Data's hash shuffle: the data of a stage must outlive the node that
wrote it. A map task writes one Arrow IPC file holding one record batch per partition (empty ones too), under
a temporary name that is renamed when complete; a reduce task reads batch ``p`` of every map file (the IPC
footer gives random access). When a node dies, the tasks it was running are rerun elsewhere by Ray
(``max_retries``) and rewrite the same files; what finished before stays on the shared disk, so nothing is
recomputed from lineage and no partition ever passes through the driver, which sees only file names and
small per-task counts. Ray Data's shuffle keeps partitions in aggregator actors and the object store of the
node that holds them, which a lost node takes with it.

Every task attempt leaves a marker (stage, task, node) in the scratch folder, so a finished run can say which
tasks were retried and where they ran (:meth:`StageRunner.report`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ATTEMPTS = "attempts"


def ensure_ray(address: str | None = None) -> Any:
    """Connect to ``address`` or start a local Ray (never stops one that is already running)."""
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                address="local", _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False
            )
    return ray


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    if batches:
        return batches[0]
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in table.schema], schema=table.schema)


def write_partitioned(
    path: Path, table: pa.Table, part: np.ndarray, parts: int, compression: str | None = None
) -> None:
    """``table``'s rows as ``parts`` record batches (batch ``p`` = the rows whose ``part`` is ``p``, in order)."""
    part = np.asarray(part, np.int64)
    order = np.argsort(part, kind="stable")
    table = table.take(pa.array(order)) if len(order) else table
    counts = np.bincount(part, minlength=parts)
    starts = np.concatenate(([0], np.cumsum(counts)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as writer:
        for p in range(parts):
            writer.write_batch(_one_batch(table.slice(int(starts[p]), int(counts[p]))))
    os.replace(tmp, path)


def write_table(path: Path, table: pa.Table, compression: str | None = None) -> None:
    """One unpartitioned table (a single batch), written atomically."""
    write_partitioned(path, table, np.zeros(table.num_rows, np.int64), 1, compression)


def read_partition(paths: Sequence[Path], p: int) -> pa.Table:
    """Batch ``p`` of every file, concatenated in file order."""
    batches = []
    for path in paths:
        with pa.OSFile(str(path)) as source:
            batches.append(pa.ipc.open_file(source).get_batch(p))
    return pa.Table.from_batches(batches)


def read_table(path: Path) -> pa.Table:
    return read_partition([path], 0)


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Named numpy arrays (``.npz``), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def _attempt(scratch: str, stage: str, index: int, fn: Callable, *args: Any) -> Any:
    """One task attempt: leave a marker naming the node, then run the stage body."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    marker = Path(scratch) / ATTEMPTS / f"{stage}.{index:06d}.{uuid.uuid4().hex[:8]}.{node}"
    marker.touch()
    return fn(*args)


class StageRunner:
    """Runs each stage as one Ray task per call (``num_cpus`` each, rerun up to ``max_retries`` times when a
    worker or its node dies) and waits for all of them; stages run one after the other. Object refs among a
    call's arguments are resolved before the body runs (share big arguments with ``ray.put``)."""

    def __init__(self, scratch: Path, num_cpus: float = 1.0, max_retries: int = 3) -> None:
        import ray

        self.scratch = Path(scratch)
        (self.scratch / ATTEMPTS).mkdir(parents=True, exist_ok=True)
        self.remote = ray.remote(num_cpus=num_cpus, max_retries=max_retries)(_attempt)
        self.stages: list[str] = []

    def run(self, stage: str, fn: Callable, calls: Sequence[tuple]) -> list[Any]:
        import ray

        self.stages.append(stage)
        refs = [
            self.remote.options(name=f"kalm:{stage}").remote(str(self.scratch), stage, i, fn, *args)
            for i, args in enumerate(calls)
        ]
        return ray.get(refs)

    def report(self) -> dict:
        """Tasks per node (where each finished), every task that took more than one attempt (the nodes of
        its attempts, in order) and the nodes that died during the run."""
        import ray

        attempts: dict[tuple[str, int], list[str]] = defaultdict(list)
        for marker in sorted((self.scratch / ATTEMPTS).iterdir(), key=lambda m: m.stat().st_mtime_ns):
            stage, index, _, node = marker.name.split(".", 3)
            attempts[(stage, int(index))].append(node)
        order = sorted(attempts, key=lambda key: (self._order(key[0]), key[1]))
        alive = {node["NodeID"]: node["Alive"] for node in ray.nodes()}
        used = {node for nodes in attempts.values() for node in nodes}
        return {
            "stages": list(self.stages),
            "tasks": len(attempts),
            "tasks_per_node": dict(sorted(Counter(nodes[-1] for nodes in attempts.values()).items())),
            "retried": [
                {"stage": key[0], "task": key[1], "attempts": len(attempts[key]), "nodes": attempts[key]}
                for key in order
                if len(attempts[key]) > 1
            ],
            "dead_nodes": sorted(node for node in used if not alive.get(node, False)),
        }

    def _order(self, stage: str) -> int:
        return self.stages.index(stage) if stage in self.stages else len(self.stages)


def scratch_dir(out_dir: Path, base: str | None = None) -> Path:
    """Where a run's intermediate files go: under ``base``, else beside the output folder (same storage)."""
    return (Path(base) if base else Path(out_dir).parent) / f".{Path(out_dir).name}.scratch"


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path

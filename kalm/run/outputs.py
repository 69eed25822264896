"""What a step wrote, recorded next to its summary, and the check that a cached result still stands for it.

A Prefect cache hit returns a step's persisted summary without looking at the files the summary describes. A
deleted shard, a flipped byte or a truncated manifest would then go unnoticed until a later step broke on it,
or trained on what was left. So every step records its output files (``steps/<name>.outputs.json``: size,
mtime and sha256 per file, paths relative to the run) and the flow checks each result before using it:

* the result must be the run's recorded summary of that step (a cache entry from another configuration,
  whose outputs were since overwritten, is not), and
* every recorded file must be there and unchanged, and a recorded folder must hold no other file.

"Unchanged" is decided by size and mtime (a ``stat``); a file whose mtime moved (a copy, a restore, a rewrite)
is hashed and compared, so only real changes count. ``KALM_VERIFY_OUTPUTS=full`` hashes every file every time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from kalm.hashing import hash_file
from kalm.run.paths import RunPaths
from kalm.settings import get_settings


def _files(root: Path, paths: Iterable[Path]) -> dict[str, Path]:
    found = {}
    for path in paths:
        path = Path(path)
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                found[file.resolve().relative_to(root.resolve()).as_posix()] = file
    return found


def outputs_record(run: RunPaths, paths: Iterable[Path]) -> dict:
    """``{"paths": [recorded roots], "files": {relative path: [size, mtime_ns, sha256]}}`` of ``paths``."""
    paths = [Path(p) for p in paths]
    files = {}
    for rel, file in _files(run.root, paths).items():
        stat = file.stat()
        files[rel] = [stat.st_size, stat.st_mtime_ns, hash_file(file)]
    roots = [p.resolve().relative_to(run.root.resolve()).as_posix() for p in paths]
    return {"paths": roots, "files": files}


def outputs_problem(run: RunPaths, record: dict, full: bool | None = None) -> str | None:
    """Why the files on disk are not the recorded ones (one line), or None when they are."""
    if full is None:
        full = get_settings().verify_outputs == "full"
    files = record["files"]
    for rel, (size, mtime_ns, sha256) in files.items():
        file = run.root / rel
        if not file.is_file():
            return f"{rel} is missing"
        stat = file.stat()
        if stat.st_size != size:
            return f"{rel} changed size ({stat.st_size} bytes, recorded {size})"
        if (full or stat.st_mtime_ns != mtime_ns) and hash_file(file) != sha256:
            return f"{rel} changed content (sha256 differs from the recorded one)"
    present = _files(run.root, [run.root / p for p in record["paths"]])
    extra = sorted(set(present) - set(files))
    return f"{extra[0]} was not written by this step" if extra else None


def outputs_path(run: RunPaths, step: str) -> Path:
    return run.steps / f"{step}.outputs.json"


def write_outputs(run: RunPaths, step: str, paths: Iterable[Path]) -> None:
    outputs_path(run, step).write_text(
        json.dumps(outputs_record(run, paths), indent=1, sort_keys=True) + "\n"
    )


def step_problem(run: RunPaths, step: str, result: object) -> str | None:
    """Why a (possibly cached) ``result`` of ``step`` cannot be used as it is, or None when it can."""
    summary_file, record_file = run.steps / f"{step}.json", outputs_path(run, step)
    if not summary_file.is_file() or not record_file.is_file():
        return "no record of its outputs in this run"
    try:
        summary, record = json.loads(summary_file.read_text()), json.loads(record_file.read_text())
    except ValueError:
        return f"its record in {run.steps.name}/ is unreadable"
    if json.dumps(result, sort_keys=True) != json.dumps(summary, sort_keys=True):
        return "the cached result is not the run's latest record of it (its outputs were replaced since)"
    return outputs_problem(run, record)

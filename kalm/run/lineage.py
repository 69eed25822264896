"""Lineage: what produced each artefact of a run, so a model can be traced back to its source shards.

Every recorded step also writes ``lineage/<step>.json``: its output path and fingerprint, its parents (step
name → their fingerprints at the time), the config hash, the code revision and the package versions.
``kalm lineage <artefact>`` walks the parents from a checkpoint (or any step output) back to the inputs.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from kalm.run.paths import write_json
from kalm.settings import PROJECT_ROOT

PACKAGES = (
    "kalm-pipeline",
    "torch",
    "transformers",
    "prefect",
    "ray",
    "mteb",
    "duckdb",
    "datasketch",
    "pyarrow",
)


@lru_cache(maxsize=1)
def code_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def write_lineage(
    root: Path, step: str, summary: dict, parents: dict[str, str], inputs: dict[str, str]
) -> dict:
    record = {
        "step": step,
        "output": summary.get("checkpoint") or summary.get("output"),
        "fingerprint": summary.get("fingerprint"),
        "parents": parents,
        "inputs": inputs,
        "config_hash": summary.get("config_hash"),
        "code_revision": code_revision(),
        "packages": package_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    folder = root / "lineage"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{step}.json", record)
    return record


def read_lineage(root: Path) -> dict[str, dict]:
    folder = root / "lineage"
    return (
        {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.exists() else {}
    )


def find_run_root(artefact: Path) -> Path:
    for candidate in [artefact, *artefact.parents]:
        if (candidate / "lineage").is_dir():
            return candidate
    raise FileNotFoundError(f"{artefact} is not inside a run directory with lineage records")


def step_of(records: dict[str, dict], artefact: Path, root: Path) -> str:
    if artefact.name in records and artefact.parent == root:
        return artefact.name
    target = artefact.resolve()
    for name, record in records.items():
        output = record.get("output")
        if output and (Path(output).resolve() == target or target in Path(output).resolve().parents):
            return name
    raise FileNotFoundError(f"no recorded step produced {artefact}")


def chain(root: Path, step: str) -> list[str]:
    """Indented lines from ``step`` back through its parents to the raw inputs."""
    records = read_lineage(root)
    lines: list[str] = []

    def visit(name: str, depth: int) -> None:
        record = records.get(name)
        if record is None:
            lines.append("  " * depth + f"{name} (no lineage record)")
            return
        fingerprint = (record.get("fingerprint") or "")[:12]
        lines.append(
            "  " * depth
            + f"{name}  {fingerprint}  {record.get('output') or ''}  @ {_short(record['code_revision'])}"
        )
        for parent, parent_fp in record["parents"].items():
            stale = "" if (records.get(parent) or {}).get("fingerprint") == parent_fp else "  [changed since]"
            visit(parent, depth + 1) if not stale else lines.append("  " * (depth + 1) + parent + stale)
        for key, value in record["inputs"].items():
            lines.append("  " * (depth + 1) + f"input {key}  {value[:12]}")

    visit(step, 0)
    return lines


def _short(revision: str) -> str:
    return revision[:12] + ("+dirty" if revision.endswith("+dirty") else "")


def ancestry(records: dict[str, dict], step: str) -> list[str]:
    """``step`` and every step it descends from, each once, nearest first (what ``chain`` prints as a tree)."""
    order, queue = [], [step]
    while queue:
        name = queue.pop(0)
        if name in order:
            continue
        order.append(name)
        queue += list((records.get(name) or {}).get("parents", {}))
    return order

"""The run directory: one folder per run that every stage reads from and writes to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kalm.settings import get_settings


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def for_run(cls, run_id: str, runs_dir: Path | None = None) -> RunPaths:
        return cls((runs_dir or get_settings().runs_dir) / run_id)

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def demo_eval_tasks(self) -> Path:
        return self.root / "eval_tasks"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def collected(self) -> Path:
        return self.data / "collected"

    @property
    def dedup(self) -> Path:
        return self.data / "dedup"

    @property
    def decontaminated(self) -> Path:
        return self.data / "decontaminated"

    @property
    def balanced(self) -> Path:
        return self.data / "balanced"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / name

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def ray_storage(self) -> Path:
        return self.root / "ray"

    @property
    def results_storage(self) -> Path:
        return self.root / ".prefect-results"

    @property
    def report(self) -> Path:
        return self.root / "report.md"


def record_step(
    run: RunPaths,
    name: str,
    summary: dict,
    parents: tuple[str, ...] = (),
    inputs: dict[str, str] | None = None,
) -> dict:
    """Keep a step's summary in ``steps/<name>.json`` (what ``kalm report`` reads) and its lineage record."""
    import json

    from kalm.lineage import write_lineage

    folder = run.root / "steps"
    folder.mkdir(parents=True, exist_ok=True)
    recorded = read_steps(run)
    parent_fps = {parent: recorded.get(parent, {}).get("fingerprint", "unknown") for parent in parents}
    (folder / f"{name}.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_lineage(run.root, name, summary, parent_fps, inputs or {})
    return summary


def read_steps(run: RunPaths) -> dict[str, dict]:
    import json

    folder = run.root / "steps"
    return (
        {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.exists() else {}
    )

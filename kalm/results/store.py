"""The results store: one DuckDB file holding every score ever computed and every model ever scored.

Why a database and not the per-run JSON files: evaluation must be cheap to repeat (a model hash already scored
on a task of the same revision, with the same mteb version and prompt setting, is read back instead of
re-run), checkpoints of every run must be comparable on one leaderboard, and a scheduled job must find what
is missing or stale. All three are queries over one table.

Tables:

* ``models``: the registry (content hash, latest path, stage, run id, parent hashes, created).
* ``evaluations``: one row per (model, task, task revision, mteb version, prompt setting) with the main score
  and mteb's full result JSON; this is the cache key and what the leaderboard reads.
* ``scores``: long format, one row per (model, task, split, subset, metric) with every numeric metric of the
  result JSON, for analyses beyond the main score.

Concurrency: DuckDB lets many processes read a file, or one process write it. Every operation opens a short
connection (read-only for reads) and closes it, retrying while another process holds the lock, and every
write is a single transaction, so readers never see half a result.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from kalm.evaluation.protocol import TaskScore
from kalm.results.schema import SCHEMA, ModelRecord, StoredResult, is_lock_error, metric_rows, now_utc
from kalm.results.task_refs import TaskRef

logger = logging.getLogger(__name__)


class ResultsStore:
    """Access to one results file; cheap to construct, every call opens and closes its own connection."""

    def __init__(self, path: Path | str, *, lock_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.Error as error:
                if not is_lock_error(error) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction (rolled back on any error)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect(read_only=False) as con:
            con.execute(SCHEMA)
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query; an absent store reads as empty."""
        if not self.path.exists():
            return []
        with self._connect(read_only=True) as con:
            try:
                return con.execute(sql, list(params)).fetchall()
            except duckdb.CatalogException:  # file created but schema not committed yet
                return []

    def frame(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A read-only query as a pandas DataFrame (None when the store does not exist yet)."""
        if not self.path.exists():
            return None
        with self._connect(read_only=True) as con:
            try:
                return con.execute(sql, list(params)).df()
            except duckdb.CatalogException:
                return None

    # -- registry -------------------------------------------------------------------------------------------

    def register_model(
        self,
        model_hash: str,
        path: Path | str,
        *,
        stage: str | None = None,
        run_id: str | None = None,
        parents: Sequence[str] | None = None,
    ) -> None:
        """Add a model or refresh where it lives (latest path wins).

        Stage, run and parents describe where the weights came from, so the first known value is kept: scoring
        a fine-tuned checkpoint later as a soup candidate must not relabel it.
        """
        now = now_utc()
        with self._write() as con:
            con.execute(
                """INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (model_hash) DO UPDATE SET path = excluded.path,
                     stage = coalesce(models.stage, excluded.stage),
                     run_id = coalesce(models.run_id, excluded.run_id),
                     parents = coalesce(models.parents, excluded.parents),
                     updated_at = excluded.updated_at""",
                [
                    model_hash,
                    str(path),
                    stage,
                    run_id,
                    list(parents) if parents is not None else None,
                    now,
                    now,
                ],
            )

    def models(self) -> list[ModelRecord]:
        rows = self.query(
            "SELECT model_hash, path, stage, run_id, parents, created_at FROM models ORDER BY created_at"
        )
        return [ModelRecord(h, p, s, r, tuple(par or ()), c) for h, p, s, r, par, c in rows]

    # -- results --------------------------------------------------------------------------------------------

    def record_scores(
        self,
        model_hash: str,
        scores: Mapping[str, TaskScore] | Iterable[TaskScore],
        *,
        task_revisions: Mapping[str, str],
        mteb_version: str,
        use_instructions: bool,
        results: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Store the scores of one model (replacing a previous result under the same cache key).

        `results` maps task name to mteb's result JSON; when present every numeric metric goes into
        ``scores``, otherwise only the main score does.
        """
        items = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
        now = now_utc()
        with self._write() as con:
            for item in items:
                revision = task_revisions[item.task]
                result = (results or {}).get(item.task)
                key = [model_hash, item.task, revision, mteb_version, use_instructions]
                con.execute(
                    "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        model_hash,
                        item.task,
                        item.task_type,
                        revision,
                        mteb_version,
                        use_instructions,
                        item.split,
                        item.main_score_name,
                        item.main_score,
                        list(item.languages),
                        json.dumps(result, ensure_ascii=False) if result is not None else None,
                        now,
                    ],
                )
                con.execute(
                    """DELETE FROM scores WHERE model_hash = ? AND task = ? AND task_revision = ?
                       AND mteb_version = ? AND use_instructions = ?""",
                    key,
                )
                tail = (mteb_version, revision, now, use_instructions)
                metrics = list(metric_rows(result)) if result is not None else []
                if not metrics:
                    metrics = [
                        (item.split, "default", item.main_score_name, item.main_score),
                        (item.split, "default", "main_score", item.main_score),
                    ]
                con.executemany(
                    "INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (model_hash, item.task, split, subset, metric, value, *tail)
                        for split, subset, metric, value in metrics
                    ],
                )

    def lookup(
        self, model_hash: str, tasks: Sequence[TaskRef], *, mteb_version: str, use_instructions: bool
    ) -> dict[str, StoredResult]:
        """Current (non-stale) stored results of `model_hash` on `tasks`, by task name."""
        wanted = {ref.name: ref.revision for ref in tasks}
        rows = self.query(
            """SELECT task, task_revision, task_type, languages, main_score_name, main_score, split,
                      result_json, evaluated_at
               FROM evaluations WHERE model_hash = ? AND mteb_version = ? AND use_instructions = ?""",
            [model_hash, mteb_version, use_instructions],
        )
        found: dict[str, StoredResult] = {}
        for task, revision, task_type, langs, metric, value, split, raw, at in rows:
            if wanted.get(task) != revision:
                continue
            result = json.loads(raw) if raw else None
            score = TaskScore(
                task=task,
                task_type=task_type,
                languages=list(langs or []),
                main_score_name=metric,
                main_score=value,
                split=split,
                protocol=(result or {}).get("kalm_protocol"),
            )
            found[task] = StoredResult(score, result, at)
        return found

    def missing_pairs(
        self,
        models: Sequence[str],
        tasks: Sequence[TaskRef],
        *,
        mteb_version: str,
        use_instructions: bool = True,
    ) -> list[tuple[str, str]]:
        """(model hash, task name) pairs with no result, or only stale ones (another mteb version or task
        revision), in the order of `models` then `tasks`."""
        wanted = {(ref.name, ref.revision) for ref in tasks}
        current = {
            (h, t)
            for h, t, rev in self.query(
                """SELECT DISTINCT model_hash, task, task_revision FROM evaluations
                   WHERE mteb_version = ? AND use_instructions = ?""",
                [mteb_version, use_instructions],
            )
            if (t, rev) in wanted
        }
        return [(m, ref.name) for m in models for ref in tasks if (m, ref.name) not in current]


def default_store_path() -> Path:
    """``<state dir>/results.duckdb``; the state dir follows ``KALM_STATE_DIR``."""
    from kalm.settings import get_settings

    return get_settings().state_dir / "results.duckdb"


def open_store(path: Path | str | ResultsStore | None = None) -> ResultsStore:
    """`path` as a store, or the default one."""
    if isinstance(path, ResultsStore):
        return path
    return ResultsStore(Path(path) if path is not None else default_store_path())

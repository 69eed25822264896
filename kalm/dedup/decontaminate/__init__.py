"""``decontaminate_dataset``: drop training rows whose query or positive leaks an evaluation text.

What is indexed (``tasks_dir`` laid out like ``shared/datasets/eval``, one folder per task with ``task.json``):

- STS / PairClassification: ``sentence1`` and ``sentence2`` of the test file;
- Retrieval: test ``queries.jsonl``; the ``corpus.jsonl`` texts (and titles) only with ``include_corpus``;
- Classification / Clustering: ``text`` of the test file (a Classification task's ``train.jsonl`` is the
  evaluation classifier's *training* data and is never indexed);
- Reranking: ``query``, every ``positive`` and every ``negative``.

Why the corpus is off by default: a BEIR corpus (SciFact) is one collection shared by all splits, so matching
training positives against it would drop every training row built from that dataset's train split, which is
legitimate data. KaLM/BGE-style decontamination is against test *queries* and test sentences.

A training text matches an evaluation text **exactly** when both have the same non-empty *match key*: NFKC,
case-folded, with everything but letters, digits and combining marks removed (so punctuation, symbols and
whitespace are ignored: "top-up" == "top up" == "topup", which is how the 29 Banking77 test texts equal a
train text "up to case and punctuation"), or **near-duplicately** when
their MinHash signatures share an LSH bucket and the exact Jaccard of their shingle sets is ``>= threshold``
(same shingling and banding as :mod:`kalm.dedup.pipeline`). Near matching compares Jaccard, not containment:
a long positive that merely *contains* a short test sentence is not dropped.

The evaluation index is small (tens of thousands of texts), so training rows are streamed in batches: memory is
bounded by the batch, and the row work is embarrassingly parallel: with ``use_ray`` the index is broadcast to
Ray workers that match the rows where they are (:mod:`kalm.dedup.decontaminate.cluster`, the same output).
Kept rows are written sorted by ``(id, file, row)`` like dedup, so re-runs (and shuffled inputs) give
byte-identical output.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kalm.dedup.decontaminate.cluster import cluster_decontaminate
from kalm.dedup.decontaminate.config import DecontaminationConfig, DecontaminationStats
from kalm.dedup.decontaminate.index import EvalIndex, build_eval_index, local_task_texts
from kalm.dedup.decontaminate.match import KEY_COLUMNS, batch_matches, removed_records
from kalm.dedup.decontaminate.write import REMOVED_SCHEMA, contamination_stats, write_kept
from kalm.dedup.io import discover_parquet, write_single
from kalm.dedup.minhash import MinHasher

__all__ = ["REMOVED_SCHEMA", "DecontaminationConfig", "DecontaminationStats", "decontaminate_dataset"]


def decontaminate_dataset(
    in_dir: Path,
    out_dir: Path,
    tasks_dir: Path | None = None,
    cfg: DecontaminationConfig | None = None,
    official_texts: dict[str, list[str]] | None = None,
    unchecked: list[str] = (),
) -> DecontaminationStats:
    """Drop rows of every ``*.parquet`` (but ``removed.parquet``) under ``in_dir`` that leak a text of the tasks in
    ``tasks_dir`` or of ``official_texts`` (official task name → its evaluation texts).

    ``tasks_dir`` defaults to ``cfg.tasks_dir``. Writes ``part-*.parquet`` (kept rows, canonical schema,
    sorted by id), ``removed.parquet`` (one line per (dropped row, evaluation task) with the row's key and
    text columns, the matched field, ``exact``/``near``, the Jaccard, the task and the evaluation text as
    written there) and ``stats.json`` (naming the ``unchecked`` official tasks the caller could not read).
    With ``cfg.enabled = False`` every row is kept.
    """
    cfg = cfg or DecontaminationConfig()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    tasks_dir = tasks_dir if tasks_dir is not None else cfg.tasks_dir
    if cfg.enabled and tasks_dir is None and official_texts is None:
        raise ValueError("decontamination needs a tasks_dir (argument or DecontaminationConfig.tasks_dir)")
    # Every Parquet file of rows, but not the upstream dedup step's removed.parquet (another schema).
    files = [p for p in discover_parquet(in_dir, "*.parquet", exclude=out_dir) if p.name != "removed.parquet"]
    index = None
    if cfg.enabled:
        local = local_task_texts(Path(tasks_dir), cfg.include_corpus) if tasks_dir is not None else []
        index = build_eval_index(local + sorted((official_texts or {}).items()), cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = cluster_decontaminate(files, out_dir, index, cfg) if cfg.use_ray else None
    if done is not None:
        records, rows_in = done
    else:
        records, rows_in = _match_files(files, index, cfg)
        dropped = sorted({(r["_file"], r["_row"]) for r in records})
        write_kept(files, dropped, out_dir, cfg)
    removed = pa.Table.from_pylist(
        [{k: v for k, v in r.items() if not k.startswith("_")} for r in records], schema=REMOVED_SCHEMA
    )
    write_single(out_dir / "removed.parquet", removed, REMOVED_SCHEMA)
    stats = contamination_stats(records, rows_in, index, cfg).model_copy(
        update={"unchecked": list(unchecked)}
    )
    (out_dir / "stats.json").write_text(json.dumps(stats.model_dump(mode="json"), indent=2) + "\n")
    return stats


def _match_files(
    files: list[Path], index: EvalIndex | None, cfg: DecontaminationConfig
) -> tuple[list[dict], Counter]:
    """The removed records of every file, sorted by ``(id, file, row, task)``, and the rows per category."""
    hasher = MinHasher(cfg.num_perm, cfg.seed)
    records: list[dict] = []
    rows_in: Counter = Counter()
    for file_idx, path in enumerate(files):
        row0 = 0
        for batch in pq.ParquetFile(path).iter_batches(cfg.batch_size, columns=KEY_COLUMNS):
            for v in pc.value_counts(batch.column("category")).to_pylist():
                rows_in[v["values"]] += v["counts"]
            if index is not None:
                hits = batch_matches(batch, index, cfg, hasher)
                records += removed_records(batch, hits, index, file_idx, row0)
            row0 += batch.num_rows
    records.sort(key=lambda r: (r["id"], r["_file"], r["_row"], r["eval_task"]))
    return records, rows_in

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
bounded by the batch, and the row work is embarrassingly parallel. Kept rows are written sorted by
``(id, file, row)`` like dedup, so re-runs (and shuffled inputs) give byte-identical output.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from kalm.dedup.config import MinHashSettings
from kalm.dedup.io import PartWriter, discover_parquet
from kalm.dedup.lsh import band_keys, jaccard
from kalm.dedup.minhash import MinHasher, fold32, shingle_hashes
from kalm.dedup.normalize import normalize_array

REMOVED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("positive", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("match", pa.string(), nullable=False),
        pa.field("jaccard", pa.float64(), nullable=False),
        pa.field("eval_task", pa.string(), nullable=False),
        pa.field("eval_text", pa.string(), nullable=False),
    ]
)
_KEY_COLUMNS = ["id", "source", "category", "query", "positive"]
_NOT_ALNUM_RE2 = r"[^\p{L}\p{N}\p{M}]+"


def match_key(norm: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Exact-match key of :func:`normalize_array` output: only letters, digits and marks remain."""
    return pc.replace_substring_regex(norm, _NOT_ALNUM_RE2, "")


class DecontaminationConfig(MinHashSettings):
    """Which evaluation texts to index and how training texts are matched against them.

    The MinHash fields are :class:`kalm.dedup.config.MinHashSettings`, with the same defaults as dedup.
    """

    enabled: bool = True
    tasks_dir: Path | None = Field(None, description="evaluation tasks folder (eval layout)")
    include_corpus: bool = Field(False, description="also index Retrieval corpus texts and titles")
    fields: tuple[Literal["query", "positive"], ...] = ("query", "positive")
    exact: bool = True
    near: bool = True
    batch_size: int = Field(65_536, ge=1, description="training rows read per batch")
    max_bucket_candidates: int = Field(64, ge=1, description="eval texts checked per shared LSH bucket")
    max_examples: int = Field(5, ge=0)
    rows_per_part: int = Field(1_000_000, ge=1)
    row_group_size: int = Field(100_000, ge=1)


class ContaminationExample(BaseModel):
    id: str
    field: str
    text: str
    eval_text: str
    match: str
    jaccard: float


class TaskContamination(BaseModel):
    eval_texts: int = Field(0, description="distinct match keys indexed for this task")
    rows_dropped: int = 0
    exact: int = 0
    near: int = 0
    examples: list[ContaminationExample] = Field(default_factory=list)


class CategoryContamination(BaseModel):
    rows_in: int = 0
    contaminated: int = 0
    out: int = 0


class DecontaminationStats(BaseModel):
    """``rows_dropped`` counts distinct rows; a row matching several tasks counts once per task there."""

    rows_in: int
    rows_dropped: int
    rows_out: int
    eval_texts: int = Field(description="distinct evaluation match keys indexed (all tasks)")
    per_task: dict[str, TaskContamination]
    per_category: dict[str, CategoryContamination]


# ---------------------------------------------------------------------------------------------- eval index


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def eval_task_texts(task_dir: Path, include_corpus: bool = False) -> list[str]:
    """Every evaluation text of one task folder, in file order (see the module docstring for what)."""
    meta = json.loads((task_dir / "task.json").read_text(encoding="utf-8"))
    kind, split = meta["type"], meta.get("split", "test")
    texts: list[str] = []
    if kind in ("STS", "PairClassification"):
        for r in _read_jsonl(task_dir / f"{split}.jsonl"):
            texts += [r["sentence1"], r["sentence2"]]
    elif kind in ("Classification", "Clustering"):
        texts = [r["text"] for r in _read_jsonl(task_dir / f"{split}.jsonl")]
    elif kind == "Reranking":
        for r in _read_jsonl(task_dir / f"{split}.jsonl"):
            texts += [r["query"], *r["positive"], *r["negative"]]
    elif kind == "Retrieval":
        texts = [r["text"] for r in _read_jsonl(task_dir / "queries.jsonl")]
        if include_corpus:
            for r in _read_jsonl(task_dir / "corpus.jsonl"):
                texts += [t for t in (r.get("title") or "", r["text"]) if t]
    else:
        raise ValueError(f"{task_dir.name}: unknown task type {kind!r}")
    return texts


@dataclass
class EvalIndex:
    """Distinct normalised evaluation texts with their tasks, signatures' band keys and shingle sets."""

    tasks: list[str]
    keys: pa.Array  # distinct non-empty match keys (value set for exact lookup)
    norms: pa.Array  # per key, the first normalised text with that key (what near matching shingles)
    occurrences: list[list[tuple[int, str]]]  # per key: (task index, first original text in that task)
    per_task_texts: list[int]
    band_sorted: list[tuple[np.ndarray, np.ndarray]]  # per band: (sorted keys, eval index per key)
    shingle_sets: list[np.ndarray]


def build_eval_index(tasks_dir: Path, cfg: DecontaminationConfig) -> EvalIndex:
    tasks_dir = Path(tasks_dir)
    task_dirs = sorted(p.parent for p in tasks_dir.glob("*/task.json"))
    if not task_dirs:
        raise FileNotFoundError(f"no */task.json under {tasks_dir}")
    tasks = [d.name for d in task_dirs]
    slot: dict[str, int] = {}
    first_norm: list[str] = []
    occurrences: list[list[tuple[int, str]]] = []
    per_task = []
    for t, task_dir in enumerate(task_dirs):
        originals = eval_task_texts(task_dir, cfg.include_corpus)
        norms = normalize_array(pa.array(originals, pa.string()))
        seen: set[str] = set()
        for orig, norm, key in zip(originals, norms.to_pylist(), match_key(norms).to_pylist(), strict=True):
            if not key or key in seen:
                continue
            seen.add(key)
            k = slot.setdefault(key, len(slot))
            if k == len(occurrences):
                occurrences.append([])
                first_norm.append(norm)
            occurrences[k].append((t, orig))
        per_task.append(len(seen))
    norm_arr = pa.array(first_norm, pa.string())
    band_sorted, sets = [], []
    if cfg.near and len(norm_arr):
        hashes, offsets = shingle_hashes(norm_arr, **cfg.shingling())
        sig = MinHasher(cfg.num_perm, cfg.seed).signatures(fold32(hashes), offsets)
        keys = band_keys(sig, cfg.bands, cfg.rows)
        docs = np.flatnonzero(np.diff(offsets) > 0)
        for b in range(cfg.bands):
            order = np.argsort(keys[docs, b], kind="stable")
            band_sorted.append((keys[docs, b][order], docs[order]))
        sets = [np.unique(hashes[offsets[k] : offsets[k + 1]]) for k in range(len(norm_arr))]
    return EvalIndex(
        tasks, pa.array(list(slot), pa.string()), norm_arr, occurrences, per_task, band_sorted, sets
    )


# ---------------------------------------------------------------------------------------------- matching


def _near_matches(
    norm: pa.Array, index: EvalIndex, cfg: DecontaminationConfig, hasher: MinHasher
) -> list[tuple[int, int, float]]:
    """``(text position, eval index, jaccard)`` for verified near matches of non-empty normalised texts."""
    hashes, offsets = shingle_hashes(norm, **cfg.shingling())
    keys = band_keys(hasher.signatures(fold32(hashes), offsets), cfg.bands, cfg.rows)
    has = np.diff(offsets) > 0
    found = []
    for b, (sorted_keys, members) in enumerate(index.band_sorted):
        lo = np.searchsorted(sorted_keys, keys[:, b], "left")
        cnt = np.minimum(np.searchsorted(sorted_keys, keys[:, b], "right") - lo, cfg.max_bucket_candidates)
        cnt[~has] = 0
        if not cnt.any():
            continue
        text = np.repeat(np.arange(len(cnt)), cnt)
        first = np.repeat(np.cumsum(cnt) - cnt, cnt)
        found.append(np.stack((text, members[lo[text] + np.arange(len(text)) - first]), axis=1))
    if not found:
        return []
    out = []
    for t, e in np.unique(np.concatenate(found), axis=0).tolist():
        j = jaccard(np.unique(hashes[offsets[t] : offsets[t + 1]]), index.shingle_sets[e])
        if j >= cfg.threshold:
            out.append((t, e, j))
    return out


def _batch_matches(batch: pa.RecordBatch, index: EvalIndex, cfg: DecontaminationConfig, hasher: MinHasher):
    """Per matched row position: ``(kind_rank, -jaccard, field_rank, eval index, field, kind, jaccard)``."""
    hits: dict[int, list[tuple]] = {}
    for f_rank, field in enumerate(cfg.fields):
        norm = normalize_array(batch.column(field))
        exact_idx = np.full(len(norm), -1, np.int64)
        if cfg.exact and len(index.keys):
            exact_idx = (
                pc.index_in(match_key(norm), value_set=index.keys)
                .fill_null(-1)
                .to_numpy(zero_copy_only=False)
            )
            for pos in np.flatnonzero(exact_idx >= 0).tolist():
                e = int(exact_idx[pos])
                hits.setdefault(pos, []).append((0, -1.0, f_rank, e, field, "exact", 1.0))
        if cfg.near and index.band_sorted:
            for pos, e, j in _near_matches(norm, index, cfg, hasher):
                if exact_idx[pos] != e:
                    hits.setdefault(pos, []).append((1, -j, f_rank, e, field, "near", j))
    return hits


def _removed_records(
    batch: pa.RecordBatch, hits: dict[int, list[tuple]], index: EvalIndex, file_idx: int, row0: int
) -> list[dict]:
    """One record per (dropped row, eval task): that task's best match (exact, then Jaccard, field, text)."""
    cols = {c: batch.column(c) for c in _KEY_COLUMNS}
    records = []
    for pos in sorted(hits):
        best: dict[int, tuple] = {}
        for hit in hits[pos]:
            for task, original in index.occurrences[hit[3]]:
                if task not in best or hit[:4] < best[task][0][:4]:
                    best[task] = (hit, original)
        row = {c: cols[c][pos].as_py() for c in _KEY_COLUMNS}
        for task in sorted(best, key=lambda t: index.tasks[t]):
            hit, original = best[task]
            records.append(
                {
                    **row,
                    "field": hit[4],
                    "match": hit[5],
                    "jaccard": float(hit[6]),
                    "eval_task": index.tasks[task],
                    "eval_text": original,
                    "_file": file_idx,
                    "_row": row0 + pos,
                }
            )
    return records


# ---------------------------------------------------------------------------------------------- output


def _write_kept(files: list[Path], dropped: list[tuple[int, int]], out_dir: Path, cfg) -> None:
    """All rows except ``dropped`` ``(file, row)``, sorted by ``(id, file, row)``, streamed by DuckDB."""
    writer = PartWriter(out_dir, cfg.rows_per_part, cfg.row_group_size)
    if not files:
        writer.close()
        return
    con = duckdb.connect()
    try:
        con.register(
            "file_map",
            pa.table({"file_idx": pa.array(range(len(files)), pa.int32()), "path": [str(f) for f in files]}),
        )
        drop = np.array(dropped, np.int64).reshape(-1, 2)
        con.register("dropped", pa.table({"file_idx": drop[:, 0], "row_idx": drop[:, 1]}))
        sql = """
            SELECT r.* EXCLUDE (filename, file_row_number)
            FROM read_parquet($files, filename = true, file_row_number = true) r
            JOIN file_map f ON r.filename = f.path
            ANTI JOIN dropped d ON d.file_idx = f.file_idx AND d.row_idx = r.file_row_number
            ORDER BY r.id, f.file_idx, r.file_row_number
        """
        reader = con.sql(sql, params={"files": [str(f) for f in files]}).to_arrow_reader(cfg.row_group_size)
        writer.write_all(reader)
    finally:
        con.close()


def _stats(
    records: list[dict], rows_in: Counter, index: EvalIndex | None, cfg: DecontaminationConfig
) -> DecontaminationStats:
    per_task = {
        t: TaskContamination(eval_texts=n)
        for t, n in zip(index.tasks if index else [], index.per_task_texts if index else [], strict=True)
    }
    dropped_by_cat: Counter = Counter()
    seen: set[tuple[int, int]] = set()
    for r in records:
        s = per_task[r["eval_task"]]
        s.rows_dropped += 1
        s.exact += r["match"] == "exact"
        s.near += r["match"] == "near"
        if len(s.examples) < cfg.max_examples:
            s.examples.append(
                ContaminationExample(
                    id=r["id"],
                    field=r["field"],
                    text=r[r["field"]][:300],
                    eval_text=r["eval_text"][:300],
                    match=r["match"],
                    jaccard=r["jaccard"],
                )
            )
        key = (r["_file"], r["_row"])
        if key not in seen:
            seen.add(key)
            dropped_by_cat[r["category"]] += 1
    per_category = {
        c: CategoryContamination(
            rows_in=rows_in[c], contaminated=dropped_by_cat[c], out=rows_in[c] - dropped_by_cat[c]
        )
        for c in sorted(rows_in)
    }
    total = sum(rows_in.values())
    return DecontaminationStats(
        rows_in=total,
        rows_dropped=len(seen),
        rows_out=total - len(seen),
        eval_texts=len(index.keys) if index else 0,
        per_task=per_task,
        per_category=per_category,
    )


def decontaminate_dataset(
    in_dir: Path,
    out_dir: Path,
    tasks_dir: Path | None = None,
    cfg: DecontaminationConfig | None = None,
) -> DecontaminationStats:
    """Drop rows of every ``*.parquet`` (but ``removed.parquet``) under ``in_dir`` that leak a text of the tasks in ``tasks_dir``.

    ``tasks_dir`` defaults to ``cfg.tasks_dir``. Writes ``part-*.parquet`` (kept rows, canonical schema,
    sorted by id), ``removed.parquet`` (one line per (dropped row, evaluation task) with the row's key and
    text columns, the matched field, ``exact``/``near``, the Jaccard, the task and the evaluation text as
    written there) and ``stats.json``. With ``cfg.enabled = False`` every row is kept.
    """
    cfg = cfg or DecontaminationConfig()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    tasks_dir = tasks_dir if tasks_dir is not None else cfg.tasks_dir
    if cfg.enabled and tasks_dir is None:
        raise ValueError("decontamination needs a tasks_dir (argument or DecontaminationConfig.tasks_dir)")
    # Every Parquet file of rows, but not the upstream dedup step's removed.parquet (another schema).
    files = [p for p in discover_parquet(in_dir, "*.parquet", exclude=out_dir) if p.name != "removed.parquet"]
    index = build_eval_index(Path(tasks_dir), cfg) if cfg.enabled else None
    hasher = MinHasher(cfg.num_perm, cfg.seed)
    records: list[dict] = []
    rows_in: Counter = Counter()
    for file_idx, path in enumerate(files):
        row0 = 0
        for batch in pq.ParquetFile(path).iter_batches(cfg.batch_size, columns=_KEY_COLUMNS):
            for v in pc.value_counts(batch.column("category")).to_pylist():
                rows_in[v["values"]] += v["counts"]
            if index is not None:
                hits = _batch_matches(batch, index, cfg, hasher)
                records += _removed_records(batch, hits, index, file_idx, row0)
            row0 += batch.num_rows
    records.sort(key=lambda r: (r["id"], r["_file"], r["_row"], r["eval_task"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    dropped = sorted({(r["_file"], r["_row"]) for r in records})
    _write_kept(files, dropped, out_dir, cfg)
    removed = pa.Table.from_pylist(
        [{k: v for k, v in r.items() if not k.startswith("_")} for r in records], schema=REMOVED_SCHEMA
    )
    pq.write_table(removed, out_dir / "removed.parquet", compression="zstd")
    stats = _stats(records, rows_in, index, cfg)
    (out_dir / "stats.json").write_text(json.dumps(stats.model_dump(mode="json"), indent=2) + "\n")
    return stats

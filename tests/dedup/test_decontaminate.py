"""Decontamination: synthetic eval layout (every task type) and the real overlaps of the shared datasets."""

from __future__ import annotations

import csv
import gzip
import json
import re
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kalm.dedup import DecontaminationConfig, DecontaminationStats, decontaminate_dataset
from kalm.dedup.decontaminate import REMOVED_SCHEMA
from tests.conftest import SHARED_DATASETS, needs_shared

from .fixtures import read_dir, write_rows

SHARED = SHARED_DATASETS  # ../shared/datasets beside the repo
LONG = " ".join(f"w{i}" for i in range(40))


def _write_task(root: Path, name: str, kind: str, files: dict[str, list[dict]]) -> None:
    """A complete task folder of the eval layout (decontamination reads it through the evaluation's parser)."""
    (root / name).mkdir(parents=True)
    meta = {"name": name, "type": kind, "split": "test", "languages": ["eng"], "main_score": "m"}
    meta |= {"instruction": "x"} | ({"min_score": 0, "max_score": 5} if kind == "STS" else {})
    (root / name / "task.json").write_text(json.dumps(meta))
    if kind == "Retrieval":
        (root / name / "qrels").mkdir()
        (root / name / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td\t1\n")
    for fname, rows in files.items():
        (root / name / fname).write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def eval_dir(tmp_path: Path) -> Path:
    return write_eval_tasks(tmp_path / "eval")


def write_eval_tasks(root: Path) -> Path:
    """One task of every type, each with a text that ``_train_rows`` leaks."""
    _write_task(
        root,
        "Sts",
        "STS",
        {"test.jsonl": [{"sentence1": "A man plays guitar.", "sentence2": "x y", "score": 3}]},
    )
    _write_task(
        root, "Pc", "PairClassification", {"test.jsonl": [{"sentence1": "s", "sentence2": LONG, "label": 1}]}
    )
    _write_task(
        root,
        "Cls",
        "Classification",
        {
            "test.jsonl": [{"text": "Is there a top-up limit?", "label": "a"}],
            "train.jsonl": [{"text": "train only text", "label": "a"}],
        },
    )
    _write_task(root, "Clu", "Clustering", {"test.jsonl": [{"text": "a man plays guitar", "label": "a"}]})
    _write_task(
        root, "Rr", "Reranking", {"test.jsonl": [{"query": "rq", "positive": ["rp"], "negative": ["rneg"]}]}
    )
    _write_task(
        root,
        "Ret",
        "Retrieval",
        {
            "queries.jsonl": [{"_id": "1", "text": "what causes rain"}],
            "corpus.jsonl": [{"_id": "d", "title": "Rain", "text": "corpus passage about clouds"}],
        },
    )
    return root


def _train_rows() -> list[dict]:
    edited = LONG.replace("w20", "zz")  # mid-text substitution: word 5-gram J = 31/41 = 0.76 < 0.8
    near = LONG.replace("w39", "zz")  # last word: J = 35/37 = 0.946
    return [
        {"id": "r5", "query": "A MAN plays guitar!!", "positive": "unrelated"},  # Sts + Clu (exact)
        {"id": "r1", "query": "is there a topup limit", "positive": "p"},  # Cls: spaces/punct ignored
        {"id": "r2", "query": "q", "positive": near},  # Pc near
        {"id": "r3", "query": "q", "positive": edited},  # below threshold: kept
        {"id": "r4", "query": "train only text", "positive": "rneg"},  # Rr negative (exact on positive)
        {"id": "r0", "query": "What causes rain?", "positive": "corpus passage about clouds"},  # Ret query
        {"id": "r6", "query": "corpus passage about clouds", "positive": "?!"},  # corpus: only if included
        {"id": "r7", "query": "...", "positive": ""},  # empty keys never match
    ]


def test_every_task_type_and_removed_records(eval_dir: Path, tmp_path: Path) -> None:
    write_rows(tmp_path / "in" / "a.parquet", _train_rows()[:4])
    write_rows(tmp_path / "in" / "b" / "c.parquet", _train_rows()[4:])
    stats = decontaminate_dataset(tmp_path / "in", tmp_path / "out", eval_dir)
    kept = read_dir(tmp_path / "out").column("id").to_pylist()
    assert kept == ["r3", "r6", "r7"]
    removed = pq.read_table(tmp_path / "out" / "removed.parquet")
    assert removed.schema == REMOVED_SCHEMA
    got = [(r["id"], r["eval_task"], r["field"], r["match"], r["eval_text"]) for r in removed.to_pylist()]
    assert got == [
        ("r0", "Ret", "query", "exact", "what causes rain"),
        ("r1", "Cls", "query", "exact", "Is there a top-up limit?"),
        ("r2", "Pc", "positive", "near", LONG),
        ("r4", "Rr", "positive", "exact", "rneg"),
        ("r5", "Clu", "query", "exact", "a man plays guitar"),
        ("r5", "Sts", "query", "exact", "A man plays guitar."),
    ]
    near = [r["jaccard"] for r in removed.to_pylist() if r["match"] == "near"]
    assert near == [pytest.approx(35 / 37)]
    assert (stats.rows_in, stats.rows_dropped, stats.rows_out) == (8, 5, 3)
    assert stats.per_task["Sts"].rows_dropped == 1 and stats.per_task["Pc"].near == 1
    assert stats.per_task["Ret"].eval_texts == 1  # queries only
    assert stats.per_category["cat"].contaminated == 5
    assert stats.per_task["Cls"].examples[0].text == "is there a topup limit"
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert DecontaminationStats.model_validate(saved) == stats

    # include_corpus adds the corpus texts and titles; r6 is now contaminated.
    cfg = DecontaminationConfig(include_corpus=True)
    stats2 = decontaminate_dataset(tmp_path / "in", tmp_path / "out2", eval_dir, cfg)
    assert (
        stats2.per_task["Ret"].eval_texts == 3 and "r6" not in read_dir(tmp_path / "out2")["id"].to_pylist()
    )


def test_rerun_is_byte_identical_and_disabled_keeps_all(eval_dir: Path, tmp_path: Path) -> None:
    rows = _train_rows()
    write_rows(tmp_path / "in1" / "all.parquet", rows)
    write_rows(tmp_path / "in2" / "x.parquet", rows[::-1][:5])
    write_rows(tmp_path / "in2" / "y.parquet", rows[::-1][5:])
    cfg = DecontaminationConfig(tasks_dir=eval_dir, rows_per_part=2, row_group_size=1)
    outs = []
    for name in ("in1", "in2", "in2"):
        out = tmp_path / f"out{len(outs)}"
        decontaminate_dataset(tmp_path / name, out, cfg=cfg)
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outs[0] == outs[1] == outs[2]
    assert sorted(outs[0]) == ["part-00000.parquet", "part-00001.parquet", "removed.parquet", "stats.json"]
    off = decontaminate_dataset(tmp_path / "in1", tmp_path / "off", cfg=DecontaminationConfig(enabled=False))
    assert off.rows_dropped == 0 and read_dir(tmp_path / "off").num_rows == len(rows)
    with pytest.raises(ValueError, match="tasks_dir"):
        decontaminate_dataset(tmp_path / "in1", tmp_path / "bad", cfg=DecontaminationConfig())


def test_official_benchmark_texts_are_checked_like_local_tasks(eval_dir: Path, tmp_path: Path) -> None:
    """The texts of an official task (read through mteb, passed in) drop rows as a local task's texts do."""
    from kalm.evaluation import load_local_tasks
    from kalm.evaluation.task_texts import task_texts

    write_rows(tmp_path / "in" / "rows.parquet", _train_rows())
    local = decontaminate_dataset(tmp_path / "in", tmp_path / "local", eval_dir)
    official = {
        t.metadata.name: task_texts(t) for t in load_local_tasks(eval_dir)
    }  # as mteb objects give them
    stats = decontaminate_dataset(
        tmp_path / "in",
        tmp_path / "official",
        cfg=DecontaminationConfig(),
        official_texts=official,
        unchecked=["SomeTask@abc"],
    )
    assert stats.rows_dropped == local.rows_dropped > 0
    assert {t: s.rows_dropped for t, s in stats.per_task.items()} == {
        t: s.rows_dropped for t, s in local.per_task.items()
    }
    assert read_dir(tmp_path / "official").equals(read_dir(tmp_path / "local"))
    assert stats.unchecked == ["SomeTask@abc"]


# ------------------------------------------------------------------------------------ real shared data


def _key(text: str) -> str:
    """Independent plain-Python 'equal up to case and punctuation': case-folded letters and digits only."""
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


def _grams(text: str) -> set:
    """Independent re-statement of the near-dup shingles: word 5-grams, or char 5-grams for < 8 words."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = " ".join("".join(c for c in t if not unicodedata.category(c).startswith("P")).split())
    words = t.split()
    if len(words) >= 8 and not re.search(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]", t):
        return {tuple(words[i : i + 5]) for i in range(len(words) - 4)}
    return {t[i : i + 5] for i in range(len(t) - 4)} if len(t) >= 5 else {t}


@needs_shared
def test_real_overlaps_banking77_and_20ng(tmp_path: Path) -> None:
    with open(SHARED / "train/banking77/train.csv", newline="", encoding="utf-8") as fh:
        bank = [r["text"] for r in csv.DictReader(fh)]
    with gzip.open(SHARED / "train/twenty_newsgroups/train.jsonl.gz", "rt", encoding="utf-8") as fh:
        posts = [json.loads(line) for line in fh]
    assert (len(bank), len(posts)) == (10_003, 11_314)
    rows = [{"id": f"b77-{i:05d}", "source": "banking77", "query": t} for i, t in enumerate(bank)]
    # 20NG article numbers repeat across newsgroups (cross-posts), so ids here are line numbers.
    rows += [{"id": f"20ng-{i:05d}", "source": "20ng", "query": p["subject"]} for i, p in enumerate(posts)]
    write_rows(tmp_path / "in" / "train.parquet", rows)

    def test_texts(task: str) -> list[str]:
        lines = (SHARED / "eval" / task / "test.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["text"] for line in lines]

    b77_test, ng_test = test_texts("Banking77Classification"), test_texts("TwentyNewsgroupsClustering")
    bank_keys, ng_keys = {_key(t) for t in b77_test}, {_key(t) for t in ng_test}
    # The documented overlaps, recomputed here: 29 Banking77 test texts, 2,001 verbatim 20NG test subjects.
    train_bank_keys, train_subjects = {_key(b) for b in bank}, {p["subject"] for p in posts}
    assert sum(_key(t) in train_bank_keys for t in b77_test) == 29
    assert sum(t in train_subjects for t in ng_test) == 2_001
    expected_bank = {r["id"] for r in rows[: len(bank)] if _key(r["query"]) in bank_keys}
    expected_ng = {r["id"] for r in rows[len(bank) :] if _key(r["query"]) in ng_keys}
    ng_test_set = set(ng_test)
    verbatim_ng = {f"20ng-{i:05d}" for i, p in enumerate(posts) if p["subject"] in ng_test_set}
    assert len(expected_bank) >= 29 and verbatim_ng <= expected_ng

    stats = decontaminate_dataset(tmp_path / "in", tmp_path / "out", SHARED / "eval")
    removed = pq.read_table(tmp_path / "out" / "removed.parquet").to_pylist()

    def dropped(task: str, match: str) -> set[str]:
        return {r["id"] for r in removed if r["eval_task"] == task and r["match"] == match}

    assert dropped("Banking77Classification", "exact") == expected_bank
    assert dropped("TwentyNewsgroupsClustering", "exact") == expected_ng
    # Near matches (e.g. "Re: X" vs "X") are genuine: the Jaccard recomputed in plain Python agrees.
    near = [r for r in removed if r["match"] == "near"]
    assert near, "expected some near-duplicate leaks (e.g. 'Re: ' prefixes)"
    for r in near:
        a, b = _grams(r["query"]), _grams(r["eval_text"])
        assert len(a & b) / len(a | b) == pytest.approx(r["jaccard"]) and r["jaccard"] >= 0.8
    kept = set(read_dir(tmp_path / "out").column("id").to_pylist())
    assert not kept & (expected_bank | expected_ng) and len(kept) == stats.rows_out
    assert stats.rows_out + stats.rows_dropped == len(rows)
    assert stats.per_task["Banking77Classification"].exact == len(expected_bank)
    assert stats.per_task["TwentyNewsgroupsClustering"].examples

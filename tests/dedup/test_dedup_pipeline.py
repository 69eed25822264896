"""End-to-end dedup on small canonical Parquet fixtures: recall, keep rule, determinism, accounting."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from data_catalog.schema import CANONICAL_SCHEMA
from kalm.dedup import DedupConfig, DedupStats, dedup_dataset
from kalm.dedup.normalize import normalize_text

from .fixtures import random_words, read_dir, write_rows


def _word_jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(t: str) -> set[tuple[str, ...]]:
        w = normalize_text(t).split()
        return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list]:
    """~2,000 docs of ~100 words; 40 planted pairs at J >= 0.85 and 40 at J <= 0.5."""
    rng = np.random.default_rng(11)
    vocab = [f"tok{i}" for i in range(3000)]
    docs = [random_words(rng, vocab, int(rng.integers(90, 110))) for _ in range(1920)]
    high, low = [], []
    for k in range(80):
        base = docs[k]
        twin = list(base)
        if k < 40:
            twin[int(rng.integers(0, len(twin)))] = "edited"  # one substitution: J in [0.90, 0.98]
            high.append((k, len(docs)))
        else:
            half = len(twin) // 2
            twin[half:] = random_words(rng, vocab, len(twin) - half)  # J ~ 0.3
            low.append((k, len(docs)))
        docs.append(twin)
    rows = [
        {"id": f"d{i:05d}", "query": " ".join(d[:10]), "positive": " ".join(d[10:])}
        for i, d in enumerate(docs)
    ]
    texts = [" ".join(d) for d in docs]
    for i, j in high:
        assert _word_jaccard(texts[i], texts[j]) >= 0.85
    for i, j in low:
        assert _word_jaccard(texts[i], texts[j]) <= 0.5
    random.Random(0).shuffle(rows)
    in_dir = tmp_path_factory.mktemp("planted_in")
    write_rows(in_dir / "a.parquet", rows[:1000])
    write_rows(in_dir / "sub" / "b.parquet", rows[1000:])
    return in_dir, high, low


def test_lsh_recall_and_precision_on_planted_pairs(planted: tuple[Path, list, list], tmp_path: Path) -> None:
    in_dir, high, low = planted
    stats = dedup_dataset(in_dir, tmp_path / "out", DedupConfig())
    removed = pq.read_table(tmp_path / "out" / "removed.parquet").to_pylist()
    by_id = {r["id"]: r for r in removed}
    expected = {f"d{j:05d}": f"d{i:05d}" for i, j in high}  # the larger id goes, the smaller is kept
    assert {k: v["kept_id"] for k, v in by_id.items()} == expected
    assert all(r["reason"] == "near" for r in removed)
    assert stats.near_duplicates == len(high) and stats.exact_duplicates == 0
    assert stats.cluster_size_histogram == {1: stats.rows_out - len(high), 2: len(high)}
    assert not {f"d{i:05d}" for pair in low for i in pair} & set(by_id)


def _variant_rows() -> list[dict]:
    return [
        {"id": "e3", "query": "What is  MinHash?", "positive": "A sketch, for Jaccard."},
        {"id": "e1", "query": "what is minhash", "positive": "a sketch for jaccard"},
        {
            "id": "e2",
            "query": "ＷＨＡＴ IS MINHASH?!",
            "positive": "A   SKETCH for Jaccard!!!",
            "category": "c2",
        },
        {"id": "e4", "query": "what is minhash", "positive": "an unrelated answer about kittens"},
        {"id": "e0", "query": "", "positive": ""},
        {"id": "e5", "query": "", "positive": ""},
    ]


def test_exact_dedup_case_punctuation_and_accounting(tmp_path: Path) -> None:
    write_rows(tmp_path / "in" / "x.parquet", _variant_rows())
    write_rows(tmp_path / "in" / "quarantine" / "bad.parquet", [{"id": "e1", "query": "ignored"}])
    stats = dedup_dataset(tmp_path / "in", tmp_path / "out", DedupConfig())
    kept = read_dir(tmp_path / "out")
    removed = pq.read_table(tmp_path / "out" / "removed.parquet")
    assert kept.column("id").to_pylist() == ["e0", "e1", "e4"]
    triples = [(r["id"], r["reason"], r["kept_id"]) for r in removed.to_pylist()]
    assert triples == [("e2", "exact", "e1"), ("e3", "exact", "e1"), ("e5", "exact", "e0")]
    assert stats.rows_in == 6 == stats.rows_out + removed.num_rows
    assert stats.per_category["c2"].exact == 1 and stats.per_category["cat"].out == 3
    # Parquet round-trips name list children "element"; names, nullability and metadata must survive.
    assert [(f.name, f.nullable) for f in kept.schema] == [(f.name, f.nullable) for f in CANONICAL_SCHEMA]
    assert kept.schema.metadata == CANONICAL_SCHEMA.metadata and kept.cast(CANONICAL_SCHEMA).num_rows == 3
    assert DedupStats.model_validate(json.loads((tmp_path / "out" / "stats.json").read_text())) == stats


def test_exact_group_resolves_to_final_near_keeper(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(60))
    rows = [
        {"id": "b", "query": "title", "positive": words},
        {"id": "c", "query": "TITLE!", "positive": words},  # exact dup of b
        {"id": "a", "query": "title", "positive": words.replace("w30", "zz")},  # near dup of b
    ]
    write_rows(tmp_path / "in" / "x.parquet", rows)
    dedup_dataset(tmp_path / "in", tmp_path / "out", DedupConfig())
    removed = {
        r["id"]: (r["reason"], r["kept_id"])
        for r in pq.read_table(tmp_path / "out" / "removed.parquet").to_pylist()
    }
    assert removed == {"b": ("near", "a"), "c": ("exact", "a")}
    assert read_dir(tmp_path / "out").column("id").to_pylist() == ["a"]


def test_shuffled_input_gives_byte_identical_output(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vocab = [f"v{i}" for i in range(400)]
    rows = _variant_rows()
    for i in range(60):
        words = " ".join(random_words(rng, vocab, 40))
        rows.append({"id": f"r{i:03d}", "query": f"q{i % 7}", "positive": words, "negatives": [f"n{i}"]})
        if i % 5 == 0:
            rows.append({"id": f"s{i:03d}", "query": f"q{i % 7}", "positive": words.upper(), "label": "x"})
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)
    write_rows(tmp_path / "in1" / "all.parquet", rows)
    write_rows(tmp_path / "in2" / "p1.parquet", shuffled[:30])
    write_rows(tmp_path / "in2" / "deeper" / "p2.parquet", shuffled[30:])
    cfg = DedupConfig(rows_per_part=20, row_group_size=6)
    outs = []
    for name in ("in1", "in2", "in2"):
        out = tmp_path / f"out_{len(outs)}"
        dedup_dataset(tmp_path / name, out, cfg)
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outs[0] == outs[1] == outs[2]
    kept = read_dir(tmp_path / "out_0")
    ids = kept.column("id").to_pylist()
    assert ids == sorted(ids) and not any(i.startswith("s") for i in ids)
    assert len(ids) + pq.read_metadata(tmp_path / "out_0" / "removed.parquet").num_rows == len(rows)
    parts = sorted((tmp_path / "out_0").glob("part-*.parquet"))
    assert [pq.read_metadata(p).num_rows for p in parts] == [20, 20, 20, len(ids) - 60]
    assert [pq.read_metadata(parts[0]).row_group(g).num_rows for g in range(4)] == [6, 6, 6, 2]

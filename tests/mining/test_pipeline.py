"""``mine_dataset`` and the ``mine`` step on a small canonical dataset with a tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from kalm.hashing import hash_directory
from kalm.mining import MiningConfig, mine_dataset
from kalm.mining.cache import EmbeddingCache
from kalm.mining.encode import TextEncoder, texts_hash
from kalm.mining.io import MINED_SCHEMA
from tests.mining.conftest import _row, write_balanced
from tests.plots import bars, blend, read_png

CFG = MiningConfig(rank_start=2, rank_end=12, num_negatives=3, filter_topk=None, margin_fraction=None, seed=3)


def _read(out):
    return {r["id"]: r for r in pq.read_table(out / "part-00000.parquet").to_pylist()}


def test_mined_output_rows_and_provenance(balanced, tiny_checkpoint, tmp_path):
    stats = mine_dataset(balanced, tmp_path / "mined", tiny_checkpoint, CFG)
    out = tmp_path / "mined"
    table = pq.read_table(out / "part-00000.parquet")
    assert table.schema.equals(MINED_SCHEMA, check_metadata=False)
    rows = _read(out)
    assert "pre-000" not in rows and stats.rows_other_stages == 1
    assert (
        stats.rows_in == 15 and stats.rows_out == 15 and stats.rows_exemplar == 2 and stats.rows_mined == 13
    )
    # exemplar rows pass through untouched
    assert rows["cls-000"]["negatives"] == ["rain today"] and rows["cls-000"]["mined"] is False
    assert rows["cls-000"]["miner_checkpoint"] is None
    alpha = [r for r in rows.values() if r["source"] == "alpha"]
    alpha_docs = {t for r in alpha for t in (r["positive"], *r["negatives"])}
    for row in (r for r in rows.values() if r["mined"]):
        assert len(row["negatives"]) == 3 and row["miner_checkpoint"] == hash_directory(tiny_checkpoint)
        assert all(2 <= k < 12 for k in row["negative_ranks"]) and not row["filled_random"]
        assert row["positive"] not in row["negatives"] and row["query"] not in row["negatives"]
        assert len(row["negative_scores"]) == 3 and row["positive_rank"] in (None, *range(12))
    for row in alpha:  # mined within its own source, never another query positive of the same query
        assert set(row["negatives"]) <= alpha_docs
    same_query = {rows["alpha-000"]["positive"], rows["alpha-999"]["positive"]}
    assert not same_query & set(rows["alpha-000"]["negatives"] + rows["alpha-999"]["negatives"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 15 and manifest["files"][0]["path"] == "part-00000.parquet"
    plot = read_png(out / "score_hist.png", (600, 350))
    # Both score distributions are drawn (half-transparent green positives, red negatives; the legend's
    # patches are about 10 px high, the bars of a 13- and a 39-score histogram far more).
    for colour in ((44, 160, 44), (214, 39, 40)):
        assert max(bars(plot, blend(colour, 0.5), min_width=1)) > 20, colour
    saved = json.loads((out / "stats.json").read_text())
    assert sum(saved["histogram"]["negative"]) == 13 * 3 and sum(saved["histogram"]["positive"]) == 13


# Designed geometry for the filter test: a query's vector is a basis vector, a document's vector holds its score
# for each query, so every score (and rank) below is exact. Per source, query "qa" (two positives: rows a1, a2)
# ranks hot1 .99, hot2 .97, qa itself .90, pa2 .85, pa1 .80, near .75, e1 .50, e2 .40, ...: with the window
# [0, 8), top-K 6, max_score .95 and margin .90 x the row's positive score, row a1 (positive .80, margin .72)
# rejects hot1 + hot2 (max_score), qa (query), pa1 + pa2 (positive), near (margin) and keeps e1, e2; row a2
# (positive .85, margin .765) rejects the same but keeps near. Query "qb"'s positive pb (.30) ranks 7th, behind
# six closer documents: row b1 is dropped by the consistency filter. Both sources have this layout.
A_SCORES = {"hot1": 0.99, "hot2": 0.97, "qa": 0.90, "pa2": 0.85, "pa1": 0.80, "near": 0.75, "e1": 0.50}
A_SCORES |= {"e2": 0.40, "e3": 0.30, "e4": 0.20}
B_SCORES = {f"b{i}": 0.90 - 0.05 * i for i in range(6)} | {"pb": 0.30}
FILTER_CFG = MiningConfig(
    rank_start=0,
    rank_end=8,
    num_negatives=2,
    filter_topk=6,
    margin_fraction=0.90,
    max_score=0.95,
    fill_random=False,
    use_instructions=False,
    seed=0,
)


def _filter_rows(source: str) -> list[dict]:
    t = {name: f"{source} {name}" for name in [*A_SCORES, *B_SCORES, "qb"]}
    a_docs = [t[n] for n in ("qa", "hot1", "hot2", "near", "e1", "e2", "e3", "e4")]
    return [
        _row(f"{source}-a1", source, "retrieval", t["qa"], t["pa1"], a_docs),
        _row(f"{source}-a2", source, "retrieval", t["qa"], t["pa2"], []),
        _row(f"{source}-b1", source, "retrieval", t["qb"], t["pb"], [t[f"b{i}"] for i in range(6)]),
    ]


def _designed(texts: list[str]) -> np.ndarray:
    """Query texts ("<source> qa"/"qb") as basis vectors when the call holds queries only, else documents."""
    names = [t.split(" ", 1)[1] for t in texts]
    if set(names) <= {"qa", "qb"}:
        return np.array([[1.0, 0.0] if n == "qa" else [0.0, 1.0] for n in names], dtype=np.float32)
    return np.array([[A_SCORES.get(n, 0.01), B_SCORES.get(n, 0.01)] for n in names], dtype=np.float32)


def test_filters_are_counted(tiny_checkpoint, tmp_path, monkeypatch):
    """Each filter fires a known number of times per source (see A_SCORES); the stage adds the sources up."""
    balanced = write_balanced(tmp_path / "balanced", _filter_rows("alpha") + _filter_rows("beta"))
    cache_dir = tmp_path / "cache"
    calls: list[list[str]] = []
    original = TextEncoder.encode
    monkeypatch.setattr(
        TextEncoder, "encode", lambda self, texts: calls.append(list(texts)) or original(self, texts)
    )
    mine_dataset(balanced, tmp_path / "first", tiny_checkpoint, FILTER_CFG, cache_dir=cache_dir)
    assert len(calls) == 4  # pool and queries of each source
    # The designed vectors replace what the tiny model wrote for exactly these texts, under the cache's own key.
    encoder, cache = TextEncoder(tiny_checkpoint, FILTER_CFG.encode), EmbeddingCache(cache_dir)
    for texts in calls:
        cache.save(encoder.cache_key(texts_hash(texts)), _designed(texts))
    calls.clear()
    stats = mine_dataset(balanced, tmp_path / "mined", tiny_checkpoint, FILTER_CFG, cache_dir=cache_dir)
    assert calls == [], "every embedding must come from the designed cache entries"

    per_source = {"max_score": 4, "query": 2, "positive": 4, "margin": 1}
    for source in ("alpha", "beta"):
        assert stats.sources[source].dropped_examples == {"positive_not_in_topk": 1}
        assert stats.sources[source].rejected_candidates == per_source
        assert stats.sources[source].rows_out == 2
    assert stats.dropped_examples == {"positive_not_in_topk": 2}
    assert stats.rejected_candidates == {reason: 2 * n for reason, n in per_source.items()}
    assert stats.rows_in == 6 and stats.rows_mined == 4 and stats.rows_short == 0
    rows = _read(tmp_path / "mined")
    assert set(rows) == {"alpha-a1", "alpha-a2", "beta-a1", "beta-a2"}
    for source in ("alpha", "beta"):
        a1, a2 = rows[f"{source}-a1"], rows[f"{source}-a2"]
        assert a1["negatives"] == [f"{source} e1", f"{source} e2"] and a1["negative_ranks"] == [6, 7]
        assert (a1["positive_rank"], a2["positive_rank"]) == (4, 3)
        assert set(a2["negatives"]) <= {f"{source} near", f"{source} e1", f"{source} e2"}
        assert a1["positive_score"] == pytest.approx(0.80) and a2["positive_score"] == pytest.approx(0.85)
    saved = json.loads((tmp_path / "mined" / "stats.json").read_text())
    assert saved["rejected_candidates"] == stats.rejected_candidates


def test_deterministic_and_cache_reused_across_mining_params(
    balanced, tiny_checkpoint, tmp_path, monkeypatch
):
    calls = []
    original = TextEncoder.encode
    monkeypatch.setattr(
        TextEncoder, "encode", lambda self, texts: calls.append(len(texts)) or original(self, texts)
    )
    cache = tmp_path / "cache"
    mine_dataset(balanced, tmp_path / "a", tiny_checkpoint, CFG, cache_dir=cache)
    assert len(calls) == 4  # pool + queries for each of the two mined sources
    mine_dataset(balanced, tmp_path / "b", tiny_checkpoint, CFG, cache_dir=cache)
    other = CFG.model_copy(update={"rank_start": 0, "num_negatives": 5, "margin_fraction": 0.9, "seed": 9})
    mine_dataset(balanced, tmp_path / "c", tiny_checkpoint, other, cache_dir=cache)
    assert len(calls) == 4  # new mining parameters, no new encoding
    assert hash_directory(tmp_path / "a") == hash_directory(tmp_path / "b")
    assert _read(tmp_path / "a") != _read(tmp_path / "c")


@pytest.mark.parametrize("corpus_kind", ["jsonl", "parquet"])
def test_configured_corpus_joins_the_pool(balanced, tiny_checkpoint, tmp_path, corpus_kind):
    import pyarrow as pa

    docs = [
        {"_id": str(i), "title": f"extra {i}", "text": f"corpus document {i} about rivers"} for i in range(20)
    ]
    path = tmp_path / f"corpus.{corpus_kind}"
    if corpus_kind == "jsonl":
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    else:
        pq.write_table(pa.Table.from_pylist(docs), path)
    cfg = CFG.model_copy(update={"corpora": {"beta": str(path)}, "rank_end": 40, "num_negatives": 30})
    stats = mine_dataset(balanced, tmp_path / "mined", tiny_checkpoint, cfg)
    assert stats.sources["beta"].pool_size == stats.sources["alpha"].pool_size + 20 - 1
    beta = [r for r in _read(tmp_path / "mined").values() if r["source"] == "beta"]
    assert any(n.startswith("extra ") for r in beta for n in r["negatives"])


def test_mine_step_records_the_step(balanced, tiny_checkpoint, tmp_path):
    from kalm.run.paths import RunPaths
    from kalm.run.steps import read_steps
    from tasks.mine import mine_step

    run = RunPaths(tmp_path / "run")
    write_to = run.balanced
    write_to.parent.mkdir(parents=True)
    balanced.rename(write_to)
    summary = mine_step(CFG, run, tiny_checkpoint, "weights-hash")
    assert summary["output"] == str(run.mined) and summary["fingerprint"] == hash_directory(run.mined)
    assert read_steps(run)["mine"]["stats"]["rows_mined"] == 13
    assert list((run.root / "cache" / "embeddings").glob("*.npy"))


def test_cache_cap_is_applied_and_not_part_of_the_output(balanced, tiny_checkpoint, tmp_path):
    capped = CFG.model_copy(update={"encode": CFG.encode.model_copy(update={"cache_max_bytes": 1})})
    mine_dataset(balanced, tmp_path / "a", tiny_checkpoint, CFG, cache_dir=tmp_path / "cache-a")
    mine_dataset(balanced, tmp_path / "b", tiny_checkpoint, capped, cache_dir=tmp_path / "cache-b")
    assert len(list((tmp_path / "cache-a").glob("*.npy"))) == 4
    assert len(list((tmp_path / "cache-b").glob("*.npy"))) == 1  # only the entry written last is kept
    assert hash_directory(tmp_path / "a") == hash_directory(tmp_path / "b")  # same output, same fingerprint
    assert (
        "cache_max_bytes"
        not in json.loads((tmp_path / "b" / "manifest.json").read_text())["config"]["encode"]
    )

"""``mine_dataset`` and the ``mine`` step on a small canonical dataset with a tiny checkpoint."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from kalm.hashing import hash_directory
from kalm.mining import MiningConfig, mine_dataset
from kalm.mining.encode import TextEncoder
from kalm.mining.io import MINED_SCHEMA

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
    assert (out / "score_hist.png").stat().st_size > 1000
    saved = json.loads((out / "stats.json").read_text())
    assert sum(saved["histogram"]["negative"]) == 13 * 3 and sum(saved["histogram"]["positive"]) == 13


def test_filters_are_counted(balanced, tiny_checkpoint, tmp_path):
    cfg = CFG.model_copy(update={"filter_topk": 3, "margin_fraction": 0.95, "max_score": 0.99})
    stats = mine_dataset(balanced, tmp_path / "mined", tiny_checkpoint, cfg)
    dropped = stats.dropped_examples.get("positive_not_in_topk", 0)
    assert stats.rows_mined == 13 - dropped
    assert sum(s.rows_out for s in stats.sources.values()) == stats.rows_mined
    assert set(stats.rejected_candidates) <= {"positive", "query", "margin", "max_score"}
    rows = _read(tmp_path / "mined")
    for row in (r for r in rows.values() if r["mined"]):
        assert row["positive_rank"] < 3
        assert all(s <= 0.95 * row["positive_score"] + 1e-6 and s <= 0.99 for s in row["negative_scores"])


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

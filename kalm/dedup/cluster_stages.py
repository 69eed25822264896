"""The task bodies of dedup on a Ray cluster (:mod:`kalm.dedup.cluster` runs them in order), one unit, range or
partition each, reading and writing only the scratch folder and the inputs.

``scan`` (unit): normalise, hash the exact key, MinHash band keys (kept in the unit's sidecar), rows to their id
range. ``rank`` (range): sort by ``(id, g)``, send exact rows ``(hash, rank)`` to hash partitions. ``exact``
(partition): per hash group the smallest rank is the keeper; the others go back to their unit with it.
``bands`` (unit): band rows ``(key, rank, g)`` of exact survivors to key partitions. ``buckets`` (partition):
candidate pairs of each bucket, members in rank order (the local path's function). ``attach`` and ``verify``
(unit, twice): each pair picks up its two normalised texts where they live, and the second unit computes the
exact Jaccard; only pairs at or above the threshold go back to the driver. ``assemble`` (unit): with the
driver's near-duplicate roots, each row's final keeper; kept rows to rank ranges, removed rows to the range
of their keeper. ``keepers`` (range): the kept id of every removed row, cluster sizes and example clusters.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from kalm.dedup.config import DedupConfig
from kalm.dedup.lsh import candidate_pairs, jaccard, text_band_keys
from kalm.dedup.minhash import shingle_hashes
from kalm.dedup.normalize import join_pair, normalize_array
from kalm.dedup.ranks import (
    Unit,
    range_of,
    rank_range,
    read_unit,
    sorted_ids_path,
    unit_of,
    unit_ranks,
    write_rank_rows,
)
from kalm.dedup.shuffle import load_arrays, read_partition, read_table, save_arrays, write_partitioned


def _path(scratch: Path, kind: str, index: int, suffix: str = "arrow") -> Path:
    return Path(scratch) / kind / f"{index:06d}.{suffix}"


def _files(scratch: Path, kind: str, count: int) -> list[Path]:
    return [_path(scratch, kind, i) for i in range(count)]


def category_counts(column: pa.ChunkedArray, mask: np.ndarray | None = None) -> Counter:
    if mask is not None:
        column = column.filter(pa.array(mask))
    return Counter({v["values"]: v["counts"] for v in pc.value_counts(column).to_pylist()})


def exact_hash(query: pa.ChunkedArray, positive: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """128-bit hash of the normalised ``query \\x1f positive`` (the key the local path groups with md5)."""
    joined = pc.binary_join_element_wise(query, positive, "\x1f").cast(pa.large_binary())
    digest = b"".join(xxhash.xxh3_128_digest(b) for b in joined.to_pylist())
    both = np.frombuffer(digest, ">u8").reshape(-1, 2).astype(np.uint64)
    return both[:, 0].copy(), both[:, 1].copy()


def scan(unit: Unit, bounds: list[str], cfg: dict, scratch: Path) -> Counter:
    c = DedupConfig.model_validate(cfg)
    t = read_unit(unit, ["id", "category", "query", "positive"])
    query, positive = normalize_array(t.column("query")), normalize_array(t.column("positive"))
    extra = dict(zip(("hi", "lo"), exact_hash(query, positive), strict=True)) if c.exact else {}
    write_rank_rows(Path(scratch), unit, t.column("id"), bounds, extra)
    if c.near:
        keys, has = text_band_keys(join_pair(query, positive), c)
        save_arrays(_path(scratch, "sidecar", unit.index, "npz"), keys=keys, has=has)
    return category_counts(t.column("category"))


def rank(r: int, units: int, starts: np.ndarray, parts: int, exact: bool, scratch: Path) -> int:
    table, local = rank_range(r, units, starts, Path(scratch))
    if exact:
        lo = table.column("lo").to_numpy()
        rows = pa.table(
            {
                "hi": table.column("hi").to_numpy(),
                "lo": lo,
                "r": np.full(len(lo), r, np.int64),
                "local": local,
                "g": table.column("g").to_numpy(),
            }
        )
        write_partitioned(
            _path(scratch, "exact_in", r), rows, (lo % np.uint64(parts)).astype(np.int64), parts
        )
    return table.num_rows


def exact(e: int, ranges: int, offsets: np.ndarray, starts: np.ndarray, units: int, scratch: Path) -> int:
    t = read_partition(_files(scratch, "exact_in", ranges), e)
    hi, lo, g = (t.column(c).to_numpy() for c in ("hi", "lo", "g"))
    ranks = offsets[t.column("r").to_numpy()] + t.column("local").to_numpy()
    order = np.lexsort((ranks, lo, hi))
    hi, lo, g, ranks = hi[order], lo[order], g[order], ranks[order]
    first = np.ones(len(ranks), bool)
    first[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    rep = ranks[np.maximum.accumulate(np.where(first, np.arange(len(ranks)), 0))]
    gone = rep != ranks
    out = pa.table({"g": g[gone], "rep": rep[gone]})
    write_partitioned(_path(scratch, "exact_out", e), out, unit_of(g[gone], starts), units)
    return int(gone.sum())


def bands(
    unit: Unit, ranges: int, offsets: np.ndarray, exact_parts: int, parts: int, cfg: dict, scratch: Path
) -> int:
    c = DedupConfig.model_validate(cfg)
    ranks = unit_ranks(unit, ranges, offsets, Path(scratch))
    rep = ranks.copy()
    if exact_parts:
        gone = read_partition(_files(scratch, "exact_out", exact_parts), unit.index)
        rep[gone.column("g").to_numpy() - unit.g_start] = gone.column("rep").to_numpy()
    save_arrays(_path(scratch, "state", unit.index, "npz"), ranks=ranks, rep=rep)
    if not c.near:
        return 0
    side = load_arrays(_path(scratch, "sidecar", unit.index, "npz"))
    live = np.flatnonzero(side["has"] & (rep == ranks))
    key = side["keys"][live].ravel()
    rows = pa.table(
        {
            "key": key,
            "rank": np.repeat(ranks[live], c.bands),
            "g": np.repeat(unit.g_start + live, c.bands).astype(np.int64),
        }
    )
    write_partitioned(
        _path(scratch, "band_in", unit.index), rows, (key % np.uint64(parts)).astype(np.int64), parts
    )
    return len(key)


def buckets(b: int, units: int, starts: np.ndarray, window: int, scratch: Path) -> int:
    t = read_partition(_files(scratch, "band_in", units), b)
    key, ranks, g = (t.column(c).to_numpy() for c in ("key", "rank", "g"))
    order = np.argsort(ranks, kind="stable")  # bucket members in rank order, as in the local path
    pairs = candidate_pairs(key[order][:, None], ranks[order], window)
    known, first = np.unique(ranks, return_index=True)
    g_of = g[first]
    gi, gj = (g_of[np.searchsorted(known, pairs[:, k])] for k in (0, 1))
    out = pa.table({"ri": pairs[:, 0], "gi": gi, "rj": pairs[:, 1], "gj": gj})
    write_partitioned(_path(scratch, "pairs", b), out, unit_of(gi, starts), units)
    return len(pairs)


def unit_texts(unit: Unit, rows: np.ndarray) -> pa.ChunkedArray:
    """The normalised near-dup texts (``query + " " + positive``) of some rows of a unit."""
    t = read_unit(unit, ["query", "positive"]).take(pa.array(rows))
    return join_pair(normalize_array(t.column("query")), normalize_array(t.column("positive")))


def attach(unit: Unit, parts: int, starts: np.ndarray, units: int, scratch: Path) -> int:
    t = read_partition(_files(scratch, "pairs", parts), unit.index)
    ri, gi, rj, gj = (t.column(c).to_numpy() for c in ("ri", "gi", "rj", "gj"))
    _, once = np.unique(
        np.stack((ri, rj), axis=1), axis=0, return_index=True
    )  # a pair found in several bands
    ri, gi, rj, gj = ri[once], gi[once], rj[once], gj[once]
    out = pa.table({"ri": ri, "rj": rj, "gj": gj, "text_i": unit_texts(unit, gi - unit.g_start)})
    write_partitioned(_path(scratch, "hop", unit.index), out, unit_of(gj, starts), units, "lz4")
    return len(ri)


def _shingle_sets(texts: pa.ChunkedArray | pa.Array, shingling: dict) -> list[np.ndarray]:
    flat, off = shingle_hashes(texts, **shingling)
    return [np.unique(flat[off[k] : off[k + 1]]) for k in range(len(off) - 1)]


def verify(unit: Unit, units: int, threshold: float, shingling: dict, scratch: Path) -> np.ndarray:
    t = read_partition(_files(scratch, "hop", units), unit.index)
    if not t.num_rows:
        return np.empty((0, 2), np.int64)
    ri, rj, gj = (t.column(c).to_numpy() for c in ("ri", "rj", "gj"))
    left_ranks, left_at = np.unique(ri, return_index=True)
    left = _shingle_sets(t.column("text_i").take(pa.array(left_at)), shingling)
    right_rows, right_at = np.unique(gj, return_inverse=True)
    right = _shingle_sets(unit_texts(unit, right_rows - unit.g_start), shingling)
    li = np.searchsorted(left_ranks, ri)
    keep = np.array(
        [
            jaccard(left[a], right[b]) >= threshold
            for a, b in zip(li.tolist(), right_at.tolist(), strict=True)
        ],
        bool,
    )
    return np.stack((ri[keep], rj[keep]), axis=1).astype(np.int64)


def resolve(x: np.ndarray, node: np.ndarray, root: np.ndarray) -> np.ndarray:
    """``x`` with every near-duplicate rank replaced by its component's smallest rank."""
    out = x.copy()
    if len(node):
        at = np.minimum(np.searchsorted(node, x), len(node) - 1)
        hit = node[at] == x
        out[hit] = root[at[hit]]
    return out


def assemble(
    unit: Unit, mapping: tuple[np.ndarray, np.ndarray], ranges: int, offsets: np.ndarray, scratch: Path
) -> dict:
    state = load_arrays(_path(scratch, "state", unit.index, "npz"))
    ranks, rep = state["ranks"], state["rep"]
    final = resolve(rep, *mapping)
    removed = final != ranks
    exact_gone = removed & (rep != ranks)
    t = read_unit(unit)
    keep = np.flatnonzero(~removed)
    kept = t.take(pa.array(keep)).append_column("_rank", pa.array(ranks[keep]))
    kept_range = range_of(ranks[keep], offsets)
    write_partitioned(_path(scratch, "kept", unit.index), kept, kept_range, ranges, "lz4")
    gone = np.flatnonzero(removed)
    out = pa.table(
        {
            "rank": ranks[gone],
            "id": t.column("id").take(pa.array(gone)),
            "source": t.column("source").take(pa.array(gone)),
            "category": t.column("category").take(pa.array(gone)),
            "reason": pa.array(np.where(exact_gone[gone], "exact", "near").tolist(), pa.string()),
            "final": final[gone],
        }
    )
    write_partitioned(_path(scratch, "removed_in", unit.index), out, range_of(final[gone], offsets), ranges)
    category = t.column("category")
    return {
        "kept": np.bincount(kept_range, minlength=ranges),
        "exact": category_counts(category, exact_gone),
        "near": category_counts(category, removed & ~exact_gone),
    }


def keepers(r: int, units: int, ranges: int, offsets: np.ndarray, max_examples: int, scratch: Path) -> dict:
    """Removed rows whose keeper lies in range ``r``: their kept id, cluster sizes, the biggest clusters."""
    t = read_partition(_files(scratch, "removed_in", units), r)
    final, ranks = t.column("final").to_numpy(), t.column("rank").to_numpy()
    ids = read_table(sorted_ids_path(Path(scratch), r)).column("id")
    t = t.append_column("kept_id", ids.take(pa.array(final - offsets[r])))
    out = t.select(["rank", "id", "source", "category", "reason", "kept_id"])
    write_partitioned(_path(scratch, "removed_mid", r), out, range_of(ranks, offsets), ranges)
    kept, counts = np.unique(final, return_counts=True)
    sizes = counts + 1
    examples = []
    for k in np.lexsort((kept, -sizes))[:max_examples].tolist():
        members = np.sort(ranks[final == kept[k]])[:4]
        examples.append((int(sizes[k]), int(kept[k]), [int(kept[k]), *members.tolist()]))
    return {"histogram": Counter(sizes.tolist()), "examples": examples}

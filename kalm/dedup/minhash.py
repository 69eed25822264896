"""Vectorised shingling and MinHash signatures, bit-compatible with datasketch's ``affine32`` scheme.

Why not ``datasketch.MinHash.update``: one Python call per shingle caps throughput at a few hundred docs per
CPU-second (see ``dedup_anchors.md``). Here a batch of documents is tokenised by Arrow kernels, each *unique*
token is hashed once (xxh3), n-gram shingle hashes are rolled up from token hashes with numpy, and the
permutations are applied to the whole batch as one ``(shingles x num_perm)`` array reduced per document.

The permutation step is datasketch 2.x's default (``affine32``): the 32-bit input hash is pre-mixed with the
MurmurHash3 finalizer and mapped through ``a * h + b mod 2**32`` with ``a``/``b`` drawn from
``np.random.RandomState(seed)`` exactly as datasketch draws them. So for the same 32-bit input hashes our
signatures equal ``datasketch.MinHash(num_perm, seed, hashfunc=...)`` bit for bit (and with
:func:`sha1_hash32_array` they equal a default ``MinHash`` fed the same shingle bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

_U32_MAX = np.uint32(0xFFFFFFFF)
_ROLL_MUL = np.uint64(0x9E3779B97F4A7C15)
_CHAR_SALT = np.uint64(0x243F6A8885A308D3)
_POLY_BASE = np.uint64(0x100000001B3 * 2 + 1)
_LEN_MUL = np.uint64(0xC2B2AE3D27D4EB4F)
_POWERS = np.ones(1, np.uint64)
# Kana, CJK ideographs (incl. ext. A), Hangul: whitespace tokenisation is meaningless there.
CJK_REGEX = r"[\x{3040}-\x{30ff}\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}\x{ac00}-\x{d7af}]"


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer (datasketch's pre-mix); wraps mod 2**32 on uint32 arrays."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer: spreads rolled n-gram hashes and small code points over 64 bits."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def fold32(h64: np.ndarray) -> np.ndarray:
    """64-bit shingle hashes -> the 32-bit input hashes the ``affine32`` permutations expect."""
    return ((h64 ^ (h64 >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def sha1_hash32_array(items: Iterable[bytes]) -> np.ndarray:
    """datasketch's default ``sha1_hash32`` for many items (compatibility path, not the fast one)."""
    digests = b"".join(hashlib.sha1(b).digest()[:4] for b in items)
    return np.frombuffer(digests, dtype="<u4").astype(np.uint32)


def _powers(n: int) -> np.ndarray:
    """``_POLY_BASE ** k mod 2**64`` for ``k < n`` (grown on demand, shared by all calls)."""
    global _POWERS
    if len(_POWERS) < n:
        _POWERS = np.cumprod(
            np.concatenate(([1], np.full(max(n, 2 * len(_POWERS)) - 1, _POLY_BASE))), dtype=np.uint64
        )
    return _POWERS[:n]


def hash_strings(arr: pa.Array) -> np.ndarray:
    """64-bit hashes of the UTF-8 bytes of each string of an Arrow string array, with no per-string Python.

    A polynomial hash ``sum (byte_k + 1) * B**k mod 2**64`` per string (one ``reduceat`` over the data
    buffer), then its length mixed in and the MurmurHash3 finalizer to spread it. Batch-independent: a
    string's hash depends only on its bytes.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string()) if arr.type == pa.string() else arr
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + len(arr) + 1]
    lengths = np.diff(offsets)
    out = np.zeros(len(arr), np.uint64)
    nonempty = np.flatnonzero(lengths)
    if len(nonempty):
        data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        starts = offsets[:-1] - offsets[0]
        pos = np.arange(len(data)) - np.repeat(starts, lengths)
        weighted = (data.astype(np.uint64) + np.uint64(1)) * _powers(int(lengths.max()))[pos]
        out[nonempty] = np.add.reduceat(weighted, starts[nonempty])
    return fmix64(out ^ (lengths.astype(np.uint64) * _LEN_MUL))


def _windows(tok: np.ndarray, lengths: np.ndarray, n: int, active: np.ndarray | None = None) -> tuple:
    """Hashes of every in-document window of ``n`` consecutive tokens, and the window count per document.

    ``tok`` holds the documents' tokens back to back (``lengths`` per document); documents outside
    ``active`` contribute no windows. The n-gram hash is rolled over the whole array at once and the
    windows that would straddle two documents are masked out afterwards.
    """
    counts = np.maximum(lengths - n + 1, 0)
    if active is not None:
        counts[~active] = 0
    span = len(tok) - n + 1
    if span <= 0 or not counts.any():
        return np.empty(0, np.uint64), counts
    rolled = tok[:span].copy()
    for k in range(1, n):
        rolled *= _ROLL_MUL
        rolled += tok[k : span + k]
    runs = np.stack((counts, lengths - counts), axis=1).ravel()
    valid = np.repeat(np.tile(np.array([True, False]), len(lengths)), runs)
    return fmix64(rolled[valid[:span]]), counts


def _place(out: np.ndarray, hashes: np.ndarray, counts: np.ndarray, dest: np.ndarray) -> None:
    """Scatter per-document runs (``counts`` long, back to back in ``hashes``) to start offsets ``dest``."""
    local = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out[np.repeat(dest - local, counts) + np.arange(len(hashes))] = hashes


def _word_shingles(split: pa.ListArray, n: int, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Word n-grams of the ``active`` documents: each unique token is hashed once, windows rolled in numpy."""
    lengths = pc.list_value_length(split).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = split.flatten()
    if len(flat) == 0 or not active.any():
        return np.empty(0, np.uint64), np.zeros(len(lengths), np.int64)
    enc = flat.dictionary_encode()
    vocab = hash_strings(enc.dictionary)
    return _windows(vocab[enc.indices.to_numpy(zero_copy_only=False)], lengths, n, active)


def _char_shingles(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Character n-grams over code points; a text shorter than ``n`` is one shingle (its whole self)."""
    lengths = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    hashes, counts = _windows(fmix64(cps + _CHAR_SALT), lengths, n)
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    if not len(short):
        return hashes, counts
    whole = np.fromiter((xxhash.xxh3_64_intdigest(texts[i].encode()) for i in short), np.uint64, len(short))
    short_counts = np.zeros_like(counts)
    short_counts[short] = 1
    return _merge((hashes, counts), (whole, short_counts))


def _merge(*groups: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Interleave per-document shingle runs of groups covering disjoint documents, in document order."""
    counts = sum(c for _, c in groups)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    out = np.empty(int(offsets[-1]), np.uint64)
    for hashes, group_counts in groups:
        docs = np.flatnonzero(group_counts)
        _place(out, hashes, group_counts[docs], offsets[docs])
    return out, counts


def shingle_hashes(
    texts: pa.Array | pa.ChunkedArray, ngram: int = 5, char_ngram: int = 5, short_text_words: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """64-bit shingle hashes of already-normalised texts as a flat array plus ``offsets`` (len = docs + 1).

    Word ``ngram``-grams normally; character ``char_ngram``-grams for CJK text or texts with fewer than
    ``max(short_text_words, ngram)`` words, where word n-grams would give too few shingles to compare.
    Words are split on ASCII whitespace, the only whitespace :func:`normalize_array` leaves.
    Duplicates within a document are kept (MinHash ignores them; use ``np.unique`` for set operations).
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n_docs = len(texts)
    split = pc.ascii_split_whitespace(texts)
    words = pc.list_value_length(split).fill_null(0).to_numpy(zero_copy_only=False)
    is_char = words < max(short_text_words, ngram)
    non_ascii = np.flatnonzero(~pc.string_is_ascii(texts).fill_null(True).to_numpy(zero_copy_only=False))
    if len(non_ascii):  # the CJK regex only needs to look at rows that have non-ASCII characters
        cjk = pc.match_substring_regex(texts.take(pa.array(non_ascii)), CJK_REGEX)
        is_char[non_ascii] |= cjk.fill_null(False).to_numpy(zero_copy_only=False)
    w_hash, w_counts = _word_shingles(split, ngram, ~is_char)
    char_idx = np.flatnonzero(is_char)
    if len(char_idx):
        c_hash, c_local = _char_shingles(texts.take(pa.array(char_idx)).to_pylist(), char_ngram)
        c_counts = np.zeros(n_docs, np.int64)
        c_counts[char_idx] = c_local
        hashes, counts = _merge((w_hash, w_counts), (c_hash, c_counts)) if len(w_hash) else (c_hash, c_counts)
    else:
        hashes, counts = w_hash, w_counts
    offsets = np.zeros(n_docs + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return hashes, offsets


class MinHasher:
    """Applies ``num_perm`` affine32 permutations (datasketch-identical for a given ``seed``) to batches.

    ``max_chunk_shingles`` bounds the ``(num_perm, shingles)`` work array: 8k shingles x 128 perms (4 MB) stays
    cache-resident and measured ~2x faster than 64k on the benchmark corpus (same output).
    """

    def __init__(self, num_perm: int = 128, seed: int = 1, max_chunk_shingles: int = 1 << 13) -> None:
        gen = np.random.RandomState(seed)
        # Same draws, same dtype, same order as datasketch.MinHash._init_permutations for "affine32".
        self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        self.num_perm = num_perm
        self.max_chunk_shingles = max_chunk_shingles

    def signatures(self, h32: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``(docs, num_perm)`` uint32 signatures; a document without shingles keeps the all-max signature."""
        n_docs = len(offsets) - 1
        out = np.full((n_docs, self.num_perm), _U32_MAX, np.uint32)
        mixed = fmix32(h32.astype(np.uint32, copy=False))
        nonempty = np.diff(offsets) > 0
        widest = int(np.diff(offsets).max(initial=0))
        buf = np.empty((self.num_perm, max(self.max_chunk_shingles, widest)), np.uint32)
        d0 = 0
        while d0 < n_docs:
            # Largest doc range whose shingles fit the chunk budget (at least one doc), bounding memory.
            d1 = int(np.searchsorted(offsets, offsets[d0] + self.max_chunk_shingles, side="right")) - 1
            d1 = min(max(d1, d0 + 1), n_docs)
            keep = nonempty[d0:d1]
            if keep.any():
                s0, s1 = offsets[d0], offsets[d1]
                # (num_perm, shingles) layout: reduceat along the contiguous axis is ~20x faster.
                phv = np.multiply(self.a[:, None], mixed[None, s0:s1], out=buf[:, : s1 - s0])
                phv += self.b[:, None]
                starts = offsets[d0:d1][keep] - s0
                out[d0:d1][keep] = np.minimum.reduceat(phv, starts, axis=1).T
            d0 = d1
        return out

    def signatures_of_texts(
        self,
        texts: pa.Array | pa.ChunkedArray,
        ngram: int = 5,
        char_ngram: int = 5,
        short_text_words: int = 8,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Signatures of normalised texts plus a mask of documents that had at least one shingle."""
        hashes, offsets = shingle_hashes(texts, ngram, char_ngram, short_text_words)
        return self.signatures(fold32(hashes), offsets), np.diff(offsets) > 0


def jaccard_estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of agreeing permutations: the unbiased MinHash estimate datasketch's ``jaccard`` returns."""
    return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)

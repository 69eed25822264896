"""Signature equivalence with datasketch, Jaccard-estimate accuracy, shingling and normalisation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from datasketch import MinHash

from kalm.dedup.minhash import (
    MinHasher,
    fmix64,
    fold32,
    hash_strings,
    jaccard_estimate,
    sha1_hash32_array,
    shingle_hashes,
)
from kalm.dedup.normalize import normalize_array, normalize_text


def _identity(x: int) -> int:
    return x


def test_sha1_path_is_bit_identical_to_default_datasketch() -> None:
    rng = np.random.default_rng(3)
    hasher = MinHasher(num_perm=128, seed=1)
    for size in (1, 7, 300):
        items = [f"shingle {i}".encode() for i in rng.integers(0, 10_000, size)]
        ref = MinHash(num_perm=128, seed=1)
        ref.update_batch(items)
        ours = hasher.signatures(sha1_hash32_array(items), np.array([0, len(items)]))[0]
        assert np.array_equal(ours, ref.hashvalues)


def test_fast_path_is_bit_identical_given_same_input_hashes() -> None:
    rng = np.random.default_rng(4)
    vocab = [f"w{i}" for i in range(500)]
    texts = [" ".join(vocab[i] for i in rng.integers(0, 500, n)) for n in (200, 40, 9, 5)]
    texts += ["", "ab", "日本語のテキストです"]
    flat, offsets = shingle_hashes(pa.array(texts))
    h32 = fold32(flat)
    for seed in (1, 7):
        sigs = MinHasher(num_perm=64, seed=seed).signatures(h32, offsets)
        for d in range(len(texts)):
            ref = MinHash(num_perm=64, seed=seed, hashfunc=_identity)
            ref.update_batch(h32[offsets[d] : offsets[d + 1]].tolist())
            assert np.array_equal(sigs[d], ref.hashvalues), (seed, d)


def test_jaccard_estimates_track_truth_and_datasketch() -> None:
    rng = np.random.default_rng(5)
    hasher = MinHasher(num_perm=128, seed=1)
    errors, diffs = [], []
    for true_j in np.linspace(0.05, 0.95, 40):
        union = 400
        inter = round(true_j * union)
        universe = rng.choice(10**9, union, replace=False).astype(np.uint64)
        only = (union - inter) // 2
        a = universe[: inter + only]
        b = np.concatenate((universe[:inter], universe[inter + only : inter + 2 * only]))
        exact = inter / len(np.union1d(a, b))
        h_a, h_b = fold32(fmix64(a)), fold32(fmix64(b))
        sig = hasher.signatures(np.concatenate((h_a, h_b)), np.array([0, len(a), len(a) + len(b)]))
        ours = jaccard_estimate(sig[0], sig[1])
        ref_a, ref_b = (MinHash(num_perm=128, seed=1, hashfunc=_identity) for _ in range(2))
        ref_a.update_batch(h_a.tolist())
        ref_b.update_batch(h_b.tolist())
        errors.append(abs(ours - exact))
        diffs.append(abs(ours - ref_a.jaccard(ref_b)))
    assert np.mean(errors) < 0.05
    assert max(diffs) == 0.0


def test_shingling_modes() -> None:
    texts = pa.array(
        ["one two three four five six seven eight nine", "short text", "中文文本去重测试", "", "abc"]
    )
    flat, offsets = shingle_hashes(texts, ngram=5, char_ngram=5, short_text_words=8)
    counts = np.diff(offsets).tolist()
    assert counts == [5, len("short text") - 4, len("中文文本去重测试") - 4, 0, 1]
    assert flat.dtype == np.uint64
    # The same text always hashes the same, independent of its batch neighbours.
    again, _ = shingle_hashes(pa.array(["short text"]))
    assert np.array_equal(again, flat[offsets[1] : offsets[2]])


def test_normalisation_matches_python_reference() -> None:
    texts = [
        "Hello,  World!",
        "ＨＥＬＬＯ　world.",
        "Straße\tvs STRASSE",
        "  ¿Qué tal?  ",
        "don't-stop…now",
        "",
    ]
    assert normalize_array(pa.array(texts)).to_pylist() == [normalize_text(t) for t in texts]
    assert normalize_text("Hello,  World!") == normalize_text("ＨＥＬＬＯ　world.") == "hello world"


def test_normalisation_folds_every_python_whitespace_like_the_reference() -> None:
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    texts = [f"a{c}b{c}{c}c  d {c}" for c in spaces] + [" \t lead", "tail \n", "x , y"]
    assert normalize_array(pa.array(texts)).to_pylist() == [normalize_text(t) for t in texts]


def test_mixed_batches_place_each_documents_shingles_in_order() -> None:
    texts = ["中文文本去重测试", "one two three four five six seven eight nine", "ab", "", "short text here"]
    flat, offsets = shingle_hashes(pa.array(texts))
    for i, text in enumerate(texts):
        alone, _ = shingle_hashes(pa.array([text]))
        assert np.array_equal(flat[offsets[i] : offsets[i + 1]], alone), text


def test_string_hashes_depend_only_on_the_bytes() -> None:
    words = ["", "a", "ab", "ba", "héllo", "a" * 5000, "a" * 4999 + "b", "ab"]
    h = hash_strings(pa.array(words))
    assert h[2] == h[7] and len(set(h.tolist())) == len(words) - 1
    # Slices (non-zero Arrow offsets), large_string and chunked inputs give the same hashes.
    assert np.array_equal(hash_strings(pa.array(words).slice(3)), h[3:])
    assert np.array_equal(hash_strings(pa.array(words, pa.large_string())), h)
    assert np.array_equal(hash_strings(pa.chunked_array([words[:4], words[4:]])), h)

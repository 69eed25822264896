"""Text normalisation shared by exact and near dedup, done with Arrow kernels over whole columns.

Why: duplicates in scraped/merged embedding data differ mostly by case, Unicode form (full-width, ligatures),
punctuation and whitespace; normalising those away before hashing lets exact dedup catch them and makes
near-dup shingles comparable. Arrow's kernels do it in C++ per column, with no per-row Python.
"""

from __future__ import annotations

import re
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc

# ``utf8_lower`` is Unicode lowercasing; these are the casefold mappings that matter in practice beyond it.
_CASEFOLD_EXTRA = (("ß", "ss"), ("ς", "σ"))
_PUNCT_RE2 = r"\p{P}+"
_SPACE_RE2 = r"[\s\p{Z}]+"


def normalize_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """NFKC -> casefold (lower + extras) -> drop punctuation (Unicode ``P*``) -> collapse/trim whitespace."""
    out = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
    for src, dst in _CASEFOLD_EXTRA:
        out = pc.replace_substring(out, src, dst)
    out = pc.replace_substring_regex(out, _PUNCT_RE2, "")
    out = pc.replace_substring_regex(out, _SPACE_RE2, " ")
    return pc.utf8_trim_whitespace(out)


def join_pair(query: pa.Array | pa.ChunkedArray, positive: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The near-dup text ``query + " " + positive`` of two normalised columns (trimmed if one is empty)."""
    joined = pc.binary_join_element_wise(query, positive, " ")
    return pc.utf8_trim_whitespace(joined)


def normalize_text(text: str) -> str:
    """Pure-Python reference of :func:`normalize_array` (for tests and one-off checks)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return re.sub(r"\s+", " ", text).strip()

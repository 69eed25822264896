"""Pin a catalog: write each source's resolved hub commit into its loader's ``revision:``.

A catalog is a hand-written, commented file, so the pin edits its text in place instead of re-dumping YAML:
ruamel.yaml's round-trip parser gives the line and column of every loader key, and only the ``revision`` value
is written (replaced, or inserted next to ``path``). Comments, flow maps and line wrapping stay as they were.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from data_catalog.catalog import CatalogError

COMMIT = re.compile(r"[0-9a-f]{40}")
_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|[^,}\s#]*")

Edit = tuple[int, int, int, str]  # line, start column, end column, replacement


def pin_catalog(path: Path | str, resolved: Mapping[str, str]) -> str:
    """The catalog's text with ``revision: <sha>`` on the loaders of each source in ``resolved`` (name -> sha).

    BEIR corpus/qrels loaders reading the same repo get the same commit. The file is not written: the caller
    decides where the pinned catalog goes. Raises :class:`CatalogError` for an unknown source name or a sha that
    is not a full 40-hex commit (a branch name would not pin anything).
    """
    text = Path(path).read_text(encoding="utf-8")
    sources = {str(source["name"]): source for source in YAML().load(text)["sources"]}
    unknown = sorted(set(resolved) - set(sources))
    if unknown:
        raise CatalogError(f"{path}: no source named {', '.join(map(repr, unknown))}")
    bad = sorted(name for name, sha in resolved.items() if not COMMIT.fullmatch(sha))
    if bad:
        raise CatalogError(f"{path}: not a full commit sha for {', '.join(map(repr, bad))}")
    lines = text.splitlines(keepends=True)
    edits = [
        _revision_edit(lines, loader, sha)
        for name, sha in resolved.items()
        for loader in _pinned_loaders(sources[name])
    ]
    for line, start, end, replacement in sorted(edits, reverse=True):
        lines[line] = lines[line][:start] + replacement + lines[line][end:]
    pinned = "".join(lines)
    _confirm(pinned, resolved)
    return pinned


def _pinned_loaders(source: Any) -> list[Any]:
    """The source's hub loader, and BEIR side loaders that read the same repo."""
    loader = source["loader"]
    sides = [source.get("beir", {}).get(key) for key in ("corpus", "qrels")] if source.get("beir") else []
    same_repo = [side for side in sides if hasattr(side, "lc") and side.get("path") == loader.get("path")]
    return [loader, *same_repo] if loader.get("kind") == "huggingface" else []


def _revision_edit(lines: list[str], loader: Any, sha: str) -> Edit:
    """Replace the revision value, or add ``revision`` after ``path`` (same flow map, or the next line)."""
    if not isinstance(yaml.safe_load(sha), str):
        sha = f"'{sha}'"  # an all-digit sha would read back as an int
    if "revision" in loader:
        line, column = loader.lc.value("revision")
        token = _TOKEN.match(lines[line], column)
        end = token.end() if token else column
        return line, column, end, sha
    line, column = loader.lc.value("path")
    token = _TOKEN.match(lines[line], column)
    end = token.end() if token else column
    if loader.fa.flow_style():
        return line, end, end, f", revision: {sha}"
    indent = loader.lc.key("path")[1]
    eol = len(lines[line].rstrip("\r\n"))
    newline = lines[line][eol:] or "\n"
    return line, eol, eol, f"{newline}{' ' * indent}revision: {sha}"


def _confirm(pinned: str, resolved: Mapping[str, str]) -> None:
    """Re-read the edited text: every pinned loader must now carry its commit, as a string."""
    sources = {source["name"]: source for source in yaml.safe_load(pinned)["sources"]}
    for name, sha in resolved.items():
        if sources[name]["loader"].get("revision") != sha:
            raise CatalogError(f"pinning source {name!r} produced unreadable YAML; catalog left as it was")

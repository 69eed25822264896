"""Content hashes used as cache keys and lineage: of files, folders and JSON-able values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_directory(path: Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over sorted relative paths and file bytes; names in ``exclude`` are skipped at any depth."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        relative = file.relative_to(path)
        if any(part in exclude for part in relative.parts):
            continue
        digest.update(str(relative).encode())
        digest.update(hash_file(file).encode())
    return digest.hexdigest()


def hash_value(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

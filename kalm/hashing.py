"""Content hashes used as cache keys and lineage: of files, folders and JSON-able values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def hash_file(path: Path) -> str:
    """sha256 of one file's bytes (hex). The one file-hash helper: shards, manifests, weights, inputs."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_directory(path: Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over every file below ``path``: sorted relative paths, sizes and bytes, length-prefixed so
    that moving bytes between a name and a file body cannot give the same digest. Names in ``exclude`` are
    skipped at any depth. Two folders with identical contents hash the same wherever they live."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"hash_directory: {root} is not a directory")
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = file.relative_to(root)
        if any(part in exclude for part in relative.parts):
            continue
        name = relative.as_posix().encode("utf-8")
        digest.update(len(name).to_bytes(8, "big"))
        digest.update(name)
        digest.update(file.stat().st_size.to_bytes(8, "big"))
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def hash_value(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

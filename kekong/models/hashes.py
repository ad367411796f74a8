"""A1111's model hashes, cached by path, size and mtime (hashing a 7 GB file takes a while).

- `Model hash:` in infotext is sha256 of the whole file, first 10 hex digits (A1111 ≥ 1.0).
- sd-webui-controlnet shows ControlNet models as `name [8 hex]`: A1111's legacy hash, sha256 of
  the 64 KiB at offset 1 MiB.
A diffusers folder has no single file; its hash is sha256 over its weight files' hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from kekong.models.weights import models_dir

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def legacy_hash(path: str | os.PathLike) -> str:
    """A1111's old 8-hex model hash (what `[d14c016b]` after a ControlNet name is)."""
    with open(path, "rb") as file:
        file.seek(0x100000)
        return hashlib.sha256(file.read(0x10000)).hexdigest()[:8]


def file_sha256(path: str | os.PathLike) -> str:
    """Full sha256 of a file, from the cache when the file has not changed."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = _read_cache()
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    cache[key] = digest.hexdigest()
    _write_cache(cache)
    return cache[key]


def model_sha256(path: str | os.PathLike) -> str:
    """sha256 of a single-file model, or of a folder's weight files (path-sorted)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()


def short_hash(path: str | os.PathLike) -> str:
    """What A1111 writes as `Model hash:` (10 hex)."""
    return model_sha256(path)[:10]


def _cache_path() -> Path:
    return models_dir() / "hashes.json"


def _read_cache() -> dict[str, str]:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict[str, str]) -> None:
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(path)
    except OSError:
        pass  # a read-only models folder only costs re-hashing

"""The local models this install can run (base checkpoints, ControlNets), as A1111 lists them.

The server's model routes and the web UI both list them from here. Hashes of big checkpoints take
seconds to compute, so each is computed once per file version (path, size, mtime) and kept for the
life of the process, as A1111 caches them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from kekong.models.hashes import legacy_hash, model_sha256
from kekong.models.refs import SHIPPED_DIR, ModelRef, list_local


@lru_cache(maxsize=512)
def _hashes(path: str, size: int, mtime: float) -> tuple[str, str | None]:
    digest = model_sha256(path)
    return digest, legacy_hash(path) if Path(path).is_file() else None


def hashes(path: Path) -> tuple[str, str | None]:
    """(sha256, A1111's legacy 8-hex hash or None for folders)."""
    stat = path.stat()
    return _hashes(str(path), stat.st_size, stat.st_mtime)


def display_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def base_models() -> list[dict[str, Any]]:
    rows = []
    for path in list_local("base"):
        digest, _ = hashes(path)
        name = display_name(path)
        rows.append({"title": f"{name} [{digest[:10]}]", "model_name": name, "hash": digest[:10],
                     "sha256": digest, "filename": path.name, "config": None})
    return rows


def controlnet_paths() -> list[Path]:
    shipped = [p for p in sorted(SHIPPED_DIR.iterdir()) if (p / "config.json").is_file()] if SHIPPED_DIR.is_dir() \
        else []
    return [*list_local("controlnet"), *shipped]


def controlnet_models() -> list[str]:
    """`name [legacy hash]`, as /controlnet/model_list gives them."""
    from kekong.models.load import controlnet_label  # imports torch: only when ControlNets are listed

    return [controlnet_label(ModelRef(display_name(p), p, display_name(p))) for p in controlnet_paths()]

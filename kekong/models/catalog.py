"""The local models this install can run (base checkpoints, ControlNets), as A1111 lists them.

The server's model routes and the web UI both list them from here. Hashes of big checkpoints take
seconds to compute, so each is computed once per file version (path, size, mtime) and kept for the
life of the process, as A1111 caches them.
"""

from __future__ import annotations

import json
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

from kekong.models.control_types import identify_weights
from kekong.models.hashes import legacy_hash, model_sha256
from kekong.models.refs import SHIPPED_DIR, SUBFOLDERS, ModelRef, list_local


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


# Kinds by file name, for pickles whose keys cannot be read without loading them
_NAMED_KINDS = (("ip-adapter", "IP-Adapter"), ("ip_adapter", "IP-Adapter"), ("control-lora", "Control-LoRA"),
                ("control_lora", "Control-LoRA"), ("t2iadapter", "T2I-Adapter"), ("t2i-adapter", "T2I-Adapter"),
                ("t2i_adapter", "T2I-Adapter"))


def _safetensors_keys(path: Path) -> set[str]:
    """The tensor names in a .safetensors header (8-byte length + JSON), without reading the tensors."""
    try:
        with open(path, "rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > 100 * 2**20:
                return set()
            return set(json.loads(file.read(length))) - {"__metadata__"}
    except (OSError, ValueError, struct.error):
        return set()


def weights_kind(path: Path) -> str:
    """What a file or folder of the ControlNet folder holds (A1111 keeps adapters there too):
    ControlNet, IP-Adapter, T2I-Adapter, Control-LoRA or ControlNet Union."""
    if path.is_dir():
        try:
            class_name = json.loads((path / "config.json").read_text()).get("_class_name")
        except (OSError, ValueError, AttributeError):
            class_name = None
        kind = identify_weights(set(), class_name)
    elif path.suffix.lower() == ".safetensors":
        kind = identify_weights(_safetensors_keys(path))
    else:
        lowered = path.name.lower()
        kind = next((named for part, named in _NAMED_KINDS if part in lowered), None)
    return kind or "ControlNet"


def local_models() -> list[dict[str, Any]]:
    """Every model on this machine once, with its role and kind (`kekong models`): the models folder's
    (a file in ControlNet/ is listed as the one thing it is, not once per role) and the shipped ones."""
    rows: list[dict[str, Any]] = []
    seen: set[Path] = set()

    def add(role: str, kind: str, path: Path) -> None:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            rows.append({"role": role, "kind": kind, "name": display_name(path), "path": path})

    for role in SUBFOLDERS:
        if role in ("controlnet", "ipadapter"):
            continue
        for path in list_local(role):
            add(role, {"base": "base model", "lora": "LoRA", "vae": "VAE"}.get(role, role), path)
    adapters = {path.resolve() for path in list_local("ipadapter") if path.parent.name == "ipadapter"}
    for path in [*controlnet_paths(), *list_local("ipadapter")]:
        kind = "IP-Adapter" if path.resolve() in adapters else weights_kind(path)
        add("ipadapter" if kind == "IP-Adapter" else "controlnet", kind, path)
    order = ("base", "controlnet", "ipadapter", "lora", "vae")
    return sorted(rows, key=lambda row: order.index(row["role"]))  # stable: folder order within a role

"""Model references → local paths: a file, a diffusers folder, a name in the models folder, or
a hub id already in the Hugging Face cache. Nothing is downloaded.

The models folder (KEKONG_MODELS_DIR, default ~/.cache/kekong/models) uses A1111's layout, so
pointing KEKONG_MODELS_DIR at an A1111 `models` folder works; ComfyUI's names work too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kekong.errors import MissingWeightsError
from kekong.models.hashes import WEIGHT_SUFFIXES
from kekong.models.weights import models_dir

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_BASE = "kekong-shapes"

# role → sub-folders of the models folder (A1111 name first, then ComfyUI's)
SUBFOLDERS = {
    "base": ("Stable-diffusion", "checkpoints"),
    "controlnet": ("ControlNet", "controlnet"),
    "lora": ("Lora", "loras"),
    "vae": ("VAE", "vae"),
    "ipadapter": ("ControlNet", "ipadapter"),  # A1111 keeps IP-Adapters with the ControlNets
}


@dataclass(frozen=True)
class ModelRef:
    reference: str  # what the user wrote
    path: Path  # a weight file or a diffusers folder
    name: str  # display name (file stem, folder name or hub id)

    @property
    def is_file(self) -> bool:
        return self.path.is_file()


def strip_hash(reference: str) -> str:
    """A1111/sd-webui-controlnet write `name [hash]`; the name is what identifies the model."""
    return re.sub(r"\s*\[[0-9a-fA-F]{8,10}\]\s*$", "", reference.strip())


def resolve(reference: str, role: str) -> ModelRef:
    """Find `reference` for `role` ("base", "controlnet", "lora", "vae") or say where it was looked for."""
    reference = strip_hash(reference)
    if not reference:
        raise MissingWeightsError(f"empty {role} model name")
    path = Path(reference).expanduser()
    if path.is_file() or path.is_dir():
        _check_kind(path, role)
        return ModelRef(reference, path, path.stem if path.is_file() else path.name)
    shipped = SHIPPED_DIR / reference
    if shipped.is_dir():
        return ModelRef(reference, shipped, reference)
    for candidate in _local_candidates(reference, role):
        if candidate.exists():
            _check_kind(candidate, role)
            return ModelRef(reference, candidate, reference)
    cached = _hub_cache(reference)
    if cached is not None:
        return ModelRef(reference, cached, reference)
    where = ", ".join(str(models_dir() / sub) for sub in SUBFOLDERS[role])
    hub = (f" It is not in the Hugging Face cache either: run `hf download {reference}` where "
           "there is network." if _looks_like_hub_id(reference) else "")
    raise MissingWeightsError(
        f"{role} model {reference!r} not found: not a file or folder, not in {where}.{hub} "
        "`kekong models` lists what is available.")


def _local_candidates(reference: str, role: str) -> list[Path]:
    candidates = []
    for sub in SUBFOLDERS[role]:
        folder = models_dir() / sub
        candidates.append(folder / reference)
        candidates.extend(folder / f"{reference}{suffix}" for suffix in WEIGHT_SUFFIXES)
    return candidates


def _looks_like_hub_id(reference: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", reference))


def _hub_cache(reference: str) -> Path | None:
    if not _looks_like_hub_id(reference):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(reference, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None


def _check_kind(path: Path, role: str) -> None:
    if path.is_file() and path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise MissingWeightsError(f"{path} is not a model file (expected one of {', '.join(WEIGHT_SUFFIXES)})")
    if path.is_dir():
        marker = "model_index.json" if role == "base" else "config.json"
        if role in ("base", "controlnet", "vae") and not (path / marker).is_file():
            raise MissingWeightsError(f"{path} is a folder without {marker}: not a diffusers {role} model")


def list_local(role: str) -> list[Path]:
    """Every model file or folder for `role` in the models folder (for `kekong models`)."""
    found: list[Path] = []
    for sub in SUBFOLDERS[role]:
        folder = models_dir() / sub
        if folder.is_dir():
            for item in sorted(folder.iterdir()):
                if item.suffix.lower() in WEIGHT_SUFFIXES or (item / "config.json").is_file() \
                        or (item / "model_index.json").is_file():
                    found.append(item)
    if role == "base" and SHIPPED_DIR.is_dir():
        found.extend(p for p in sorted(SHIPPED_DIR.iterdir()) if (p / "model_index.json").is_file())
    return found

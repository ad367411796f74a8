"""Finding a recipe's inputs and models again for `kekong replay`.

A published recipe names files, never paths: an input image by file name + sha256 + size, a model
by name + sha256. Replay looks for each where the user keeps it: its local path when this machine
wrote the recipe (marks.py keeps them) or it was written with --record-paths; then the folders it
is given (`--inputs DIR`, the recipe's own folder, the current folder), by name first, then any
file of the same size whose sha256 matches. A model is looked up by name as generation does
(models folder, Hugging Face cache), then in those folders. What is not found is named with its
sha256, so the user knows which file to bring back."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kekong.errors import MissingWeightsError, ParameterError
from kekong.provenance.recipe import LOCAL_PATHS_KEY, get_field

_WHAT = {"init_image": "init image", "mask": "mask", "repose.image": "photo to re-pose"}


def describe_field(field: str) -> str:
    """`controls.0.image` → `control unit 0 image`."""
    if field in _WHAT:
        return _WHAT[field]
    parts = field.split(".")
    return f"control unit {parts[1]} {parts[2]}" if parts[0] == "controls" else field


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate_input(record: dict[str, Any], recorded: str | None, folders: Sequence[Path]) -> str:
    """The path of the input image `record` describes, or a ParameterError naming it and its sha256."""
    name, digest, size = record.get("name"), record["sha256"], record.get("size")
    what = describe_field(record["field"])
    candidates = [Path(recorded)] if recorded else []
    candidates += [folder / name for folder in folders if name]
    mismatched = None
    for candidate in candidates:
        if candidate.is_file():
            if _sha256(candidate) == digest:
                return str(candidate)
            mismatched = mismatched or candidate
    for folder in folders:  # renamed? any file of the same size with the same content
        if not folder.is_dir():
            continue
        for candidate in sorted(folder.iterdir()):
            if candidate.is_file() and (size is None or candidate.stat().st_size == size) \
                    and _sha256(candidate) == digest:
                return str(candidate)
    if mismatched is not None:
        raise ParameterError(f"the {what} {mismatched} is not the file the recipe was made from (its sha256 "
                             f"differs; the recipe's is {digest})")
    looked = ", ".join(str(folder) for folder in folders) or "no folder"
    called = f"{name!r}" if name else "(sent inline, no file name)"
    raise ParameterError(f"the {what} {called} (sha256 {digest}, {size} bytes) was not found in {looked}; "
                         "put it there or pass --inputs DIR")


def locate_model(record: dict[str, Any], reference: str, role: str, recorded: str | None,
                 folders: Sequence[Path]) -> tuple[str, str | None]:
    """(reference to load, warning or None) for the model `record` describes."""
    from kekong.models.hashes import WEIGHT_SUFFIXES, model_sha256
    from kekong.models.refs import resolve

    candidates: list[tuple[str, Path]] = []
    if recorded and Path(recorded).exists():
        candidates.append((recorded, Path(recorded)))
    with contextlib.suppress(MissingWeightsError):  # not where generation looks: maybe in the folders
        candidates.append((reference, resolve(reference, role).path))
    for folder in folders:
        for option in (folder / reference, *(folder / f"{reference}{suffix}" for suffix in WEIGHT_SUFFIXES)):
            if option.exists():
                candidates.append((str(option), option))
    digest = record.get("sha256")
    for chosen, path in candidates:
        if digest is None or model_sha256(path) == digest:
            return chosen, None
    if candidates:
        chosen = candidates[0][0]
        return chosen, f"{role} model {reference} is not the file the recipe was made with (sha256 differs)"
    looked = ", ".join(str(folder) for folder in folders)
    raise MissingWeightsError(f"{role} model {reference!r} (sha256 {digest}) was not found in the models folder, "
                              f"the Hugging Face cache or {looked}; `kekong models` lists what is here")


def model_records(recipe: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(record, role) of every model the recipe names through a request field."""
    models = recipe.get("models") or {}
    found = [(models.get(key), role) for key, role in (("base", "base"), ("vae", "vae"), ("refiner", "base"))]
    found += [(unit, "controlnet") for unit in models.get("controlnets", [])]  # IP-Adapters: by the unit's module
    found += [(lora, "lora") for lora in models.get("loras", [])]
    return [(record, role) for record, role in found if record and record.get("field")]


def located_request(recipe: dict[str, Any], folders: Sequence[Path]) -> tuple[dict[str, Any], list[str]]:
    """The recipe's request fields with every input and model pointed at a file here, and warnings."""
    import copy

    from kekong.models.ip_adapter import is_ip_module
    from kekong.provenance.recipe import set_field

    fields = copy.deepcopy(recipe["request"])
    from kekong.provenance.marks import remembered_paths

    recorded = {**remembered_paths(recipe), **(recipe.get(LOCAL_PATHS_KEY) or {})}  # where they were, if here
    for record in recipe.get("inputs", []):
        set_field(fields, record["field"], locate_input(record, recorded.get(record["field"]), folders))
    warnings = []
    for record, role in model_records(recipe):
        field = record["field"]
        reference = get_field(fields, field)
        if reference is None:
            continue
        if field.startswith("controls.") and is_ip_module(get_field(fields, field.rsplit(".", 1)[0] + ".module")):
            role = "ipadapter"
        chosen, warning = locate_model(record, str(reference), role, recorded.get(field), folders)
        set_field(fields, field, chosen)
        if warning:
            warnings.append(warning)
    return fields, warnings

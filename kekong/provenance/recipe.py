"""The lossless JSON recipe: every parameter, the hashes of every model and input image, and the
software and machine facts that decide bit-identity. `kekong replay` regenerates from it.

Privacy by construction: `build_recipe` is the one function that makes what is published (the
PNG chunk, the C2PA manifest, the sidecar JSON), and it never records a local path. An input
image is its file name (no folder), sha256 and size; a model is its name and sha256. Only
`local_paths(request)`, added on request (`Layers.record_paths`), keeps the paths — and only in
the user's own recipe chunk and sidecar, never in the C2PA manifest."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

RECIPE_VERSION = 2
LOCAL_PATHS_KEY = "local_paths"  # only with --record-paths; stripped from every signed copy


def environment() -> dict[str, Any]:
    """What decides whether a replay is bit-identical: versions, thread count, CPU."""
    import diffusers
    import torch
    import transformers

    from kekong import __version__
    from kekong.models import precision

    return {"kekong": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "cpu": cpu_name(), "machine": platform.machine(), "python": platform.python_version(),
            "weights": precision.setting(), "compute": precision.compute_setting()}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------ what a request names


def input_fields(request: Any) -> list[tuple[str, str]]:
    """(field, reference) of every input image the request names, fields as `controls.0.image`."""
    fields = [("init_image", request.init_image), ("mask", request.mask)]
    if getattr(request, "repose", None) is not None:
        fields.append(("repose.image", request.repose.image))  # the photo a re-pose warps
    for index, unit in enumerate(request.controls):
        fields += [(f"controls.{index}.image", unit.image), (f"controls.{index}.mask", unit.mask)]
    return [(name, reference) for name, reference in fields if reference]


def model_fields(request: Any) -> list[tuple[str, str, str]]:
    """(field, reference, role) of every model the request names by reference."""
    from kekong.choices import is_ip_module

    fields = [("model", request.model, "base"), ("vae", request.vae, "vae"), ("refiner", request.refiner, "base")]
    for index, unit in enumerate(request.controls):
        fields.append((f"controls.{index}.model", unit.model, "ipadapter" if is_ip_module(unit.module)
                       else "controlnet"))
    fields += [(f"loras.{index}.path", lora.path, "lora") for index, lora in enumerate(request.loras)]
    return [(name, reference, role) for name, reference, role in fields if reference]


def is_local_path(reference: str) -> bool:
    """A model reference that names a file or folder on this machine (as `refs.resolve` tries first),
    not a models-folder name or hub id."""
    from kekong.models.refs import strip_hash

    return Path(strip_hash(reference)).expanduser().exists()


def model_name(reference: str) -> str:
    """What a model is published as: a path becomes its file stem or folder name (as ModelRef names
    it); a models-folder name or hub id stays as it is."""
    from kekong.models.refs import strip_hash

    text = strip_hash(reference)
    path = Path(text).expanduser()
    if not path.exists():
        return text
    return path.stem if path.is_file() else path.name


def input_record(field: str, reference: str) -> dict[str, Any]:
    """An input image as published: field, file name (None for inline data), sha256 and size."""
    import hashlib

    from kekong.io import source_bytes

    data = source_bytes(reference)
    name = None if reference.startswith("data:") else Path(reference).name
    return {"field": field, "name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def public_request(request: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The request with every input replaced by its file name (or `sha256:…` for inline data) and
    every model path by the model's name."""
    fields = request.model_dump(mode="json")
    for record in inputs:
        set_field(fields, record["field"], record["name"] or f"sha256:{record['sha256']}")
    for field, reference, _ in model_fields(request):
        set_field(fields, field, model_name(reference))
    return fields


def local_paths(request: Any) -> dict[str, str]:
    """field → absolute path of every input and model given as a path (`--record-paths` only)."""
    from kekong.models.refs import strip_hash

    paths = {field: ref for field, ref in input_fields(request) if not ref.startswith("data:")}
    paths.update((field, strip_hash(ref)) for field, ref, _ in model_fields(request) if is_local_path(ref))
    return {field: str(Path(ref).expanduser().resolve()) for field, ref in paths.items()}


def with_local_inputs(recipe: dict[str, Any], request: Any, record_paths: bool = False) -> dict[str, Any]:
    """A recipe made on a server from `request` with its images sent as contents, as a local run
    records it: each input by this side's file name (sha256 and size are the bytes' own, the same
    either side), and this machine's `local_paths` when `record_paths`."""
    names = {field: None if reference.startswith("data:") else Path(reference).name
             for field, reference in input_fields(request)}
    for record in recipe.get("inputs", []):
        if record["field"] in names:
            record["name"] = names[record["field"]]
            set_field(recipe["request"], record["field"], record["name"] or f"sha256:{record['sha256']}")
    recipe.pop(LOCAL_PATHS_KEY, None)
    if record_paths:
        recipe[LOCAL_PATHS_KEY] = local_paths(request)
    return recipe


def get_field(fields: dict[str, Any], field: str) -> Any:
    value: Any = fields
    for part in field.split("."):
        value = value[int(part)] if isinstance(value, list) else value.get(part)
        if value is None:
            return None
    return value


def set_field(fields: dict[str, Any], field: str, value: Any) -> None:
    """Set `controls.0.image`-style fields in a request dict."""
    *parents, last = field.split(".")
    target: Any = fields
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def publishable(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe without the private local paths (what the C2PA manifest carries)."""
    return {key: value for key, value in recipe.items() if key != LOCAL_PATHS_KEY}


# ------------------------------------------------------------------ the recipe


def build_recipe(generated, record_paths: bool = False) -> dict[str, Any]:
    """The recipe of one generated image. Path-free unless `record_paths` (then `local_paths` holds
    them, for the user's own copy only)."""
    request = generated.request
    inputs = [input_record(field, reference) for field, reference in input_fields(request)]
    recipe = {
        "kekong_recipe": RECIPE_VERSION,
        "request": public_request(request, inputs),
        "image": {"index": generated.index, "seed": generated.seed, "batch_seed": generated.batch_seed,
                  "subseed": generated.subseed,
                  "batch_position": generated.batch_position, "prompt_used": generated.prompt_used,
                  "negative_prompt_used": generated.negative_used},
        "models": models(generated),
        "inputs": inputs,
        "environment": environment(),
    }
    if getattr(generated, "stopped", None):  # skipped / interrupted: the step it stopped at, of the steps asked for
        recipe["image"]["stopped"] = generated.stopped
    if generated.fidelity is not None:
        recipe["fidelity"] = generated.fidelity  # per unit: how well the image followed it (kekong.fidelity)
    if record_paths:
        recipe[LOCAL_PATHS_KEY] = local_paths(request)
    return recipe


def models(generated) -> dict[str, Any]:
    """Every model the image was made with, by name and sha256 (and the request field naming it)."""
    from kekong.models.hashes import model_sha256
    from kekong.models.refs import resolve

    request = generated.request

    def record(field: str | None, name: str, path: Path) -> dict[str, Any]:
        return {"field": field, "name": name, "sha256": model_sha256(path)}

    enabled = [index for index, unit in enumerate(request.controls) if unit.enabled]
    units, clip_vision = [], []
    for unit in generated.units:
        position = enabled[unit.index] if unit.index < len(enabled) else unit.index
        path = _unit_model_path(generated, unit)
        units.append({"index": unit.index, "field": f"controls.{position}.model" if unit.unit.model else None,
                      "model": unit.model_name, "label": unit.model_label,
                      "sha256": model_sha256(path) if path else None})
        if unit.model_role == "ipadapter":  # an IP-Adapter also reads a CLIP vision encoder
            from kekong.models.ip_adapter import find_image_encoder

            encoder = find_image_encoder(unit.controlnet)
            clip_vision.append({"index": unit.index, "name": encoder.stem if encoder.is_file() else encoder.name,
                                "sha256": model_sha256(encoder)})
    loras = [{**record(field, ref.name, ref.path), "weight": weight} for field, ref, weight in lora_refs(request)]
    refiner = resolve(request.refiner, "base") if request.refiner else None
    upscaler = None
    if request.enable_hr:
        from kekong.generation.hires import learned

        weights = learned(request.hr_upscaler)
        upscaler = record(None, weights.stem, weights) if weights else None
    return {"base": record("model", generated.base.name, generated.base.ref.path),
            "vae": record("vae", generated.vae.name, generated.vae.path) if generated.vae else None,
            "refiner": record("refiner", refiner.name, refiner.path) if refiner else None,
            "controlnets": units, "loras": loras, "upscaler": upscaler, "clip_vision": clip_vision}


def lora_refs(request: Any) -> list[tuple[str | None, Any, float]]:
    """(request field or None for a prompt tag, ModelRef, weight) of every LoRA the image used."""
    from kekong.models.refs import resolve
    from kekong.prompt.syntax import extract_loras

    found = [(f"loras.{index}.path", resolve(lora.path, "lora"), lora.weight)
             for index, lora in enumerate(request.loras)]
    found += [(None, resolve(name, "lora"), weight) for name, weight in extract_loras(request.prompt)[1]]
    return found


def _unit_model_path(generated, unit) -> Path | None:
    from kekong.generation.control import default_controlnet
    from kekong.models.refs import resolve

    if unit.model_role is None:  # reference-only: no file
        return None
    return resolve(unit.unit.model or default_controlnet(generated.base, unit.unit.module), unit.model_role).path

"""The one way kekong writes a generated image: with its infotext and recipe (and, as the
provenance issue adds them, more layers). Nothing else writes generated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kekong.errors import ParameterError
from kekong.io import save_image
from kekong.provenance.infotext import controlnet_entry, format_infotext
from kekong.provenance.recipe import build_recipe

RECIPE_KEY = "kekong-recipe"


def infotext_params(generated) -> dict[str, Any]:
    """A1111's key order for the parameters line."""
    from kekong.generation.samplers import resolved_schedule

    request = generated.request
    params: dict[str, Any] = {
        "Steps": request.steps, "Sampler": request.sampler,
        "Schedule type": resolved_schedule(request.sampler, request.scheduler),
        "CFG scale": float(request.cfg_scale), "Seed": generated.seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": generated.base.hash, "Model": generated.base.name,
        "Batch size": request.batch_size if request.batch_size > 1 else None,
        "Batch pos": generated.batch_position if request.batch_size > 1 else None,
        "Denoising strength": float(request.denoising_strength) if request.init_image else None,
        "Clip skip": request.clip_skip if request.clip_skip != 1 else None,
        "Mask blur": request.mask_blur if request.mask else None,
        "Inpaint area": "Only masked" if request.mask and request.inpaint_only_masked else None,
        "Masked area padding": request.only_masked_padding if request.mask and request.inpaint_only_masked else None,
        "Lora hashes": ", ".join(f"{lora.path}: {lora.weight:g}" for lora in request.loras) or None,
    }
    for unit in generated.units:
        # validated params are in the detector's declaration order: its first two sliders
        numeric = [v for v in unit.unit.params.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        a, b = [*numeric, -1, -1][:2]
        params[f"ControlNet {unit.index}"] = controlnet_entry(unit.unit, unit.model_label, a, b)
    params["Version"] = "kekong"
    return params


def describe(generated) -> tuple[str, dict[str, Any]]:
    """(A1111 infotext, JSON recipe) for a generated image."""
    request = generated.request
    return format_infotext(request.prompt, request.negative_prompt, infotext_params(generated)), \
        build_recipe(generated)


def stamp(generated, path: str | Path, recipe_sidecar: bool = False) -> Path:
    """Write the image as PNG with the `parameters` chunk and the recipe; optionally recipe JSON beside."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ParameterError(f"{path}: generated images are written as .png (they carry their parameters)")
    infotext, recipe = describe(generated)
    save_image(generated.image, path, pnginfo={"parameters": infotext, RECIPE_KEY: json.dumps(recipe)})
    if recipe_sidecar:
        sidecar = path.with_suffix(".json")
        tmp = sidecar.with_name(f".{sidecar.name}.tmp")
        tmp.write_text(json.dumps(recipe, indent=1))
        tmp.replace(sidecar)
    return path


def read_png_text(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG (parameters, kekong-recipe)."""
    from PIL import Image

    with Image.open(path) as image:
        return dict(getattr(image, "text", {}) or {})

"""The one way kekong writes a generated image, with its provenance in three layers:

1. metadata: A1111's `parameters` text chunk and the JSON recipe (`kekong-recipe` chunk);
2. an invisible watermark carrying a 40-bit id registered to the recipe on this machine;
3. a signed C2PA manifest (see credentials.py).

Each layer is on by default and can be turned off; what is off is recorded in the layers that
remain. Nothing else writes generated images."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kekong.detail_spec import infotext_params as detail_params
from kekong.errors import ParameterError
from kekong.io import encode_image, source_bytes, write_atomic
from kekong.provenance.infotext import controlnet_entry, format_infotext
from kekong.provenance.recipe import build_recipe, local_paths, lora_refs, publishable
from kekong.repose_spec import infotext_params as repose_params

RECIPE_KEY = "kekong-recipe"
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True)
class Layers:
    """Which provenance layers an image gets."""

    metadata: bool = True  # parameters + recipe chunks
    watermark: bool = True
    c2pa: bool = True
    c2pa_thumbnails: bool = False  # ingredient thumbnails would embed the user's source photo
    record_paths: bool = False  # local paths of inputs and models in the recipe chunk/sidecar (never in C2PA)


def infotext_params(generated) -> dict[str, Any]:
    """A1111's key order for the parameters line."""
    from kekong.detect.registry import get as get_detector
    from kekong.generation.samplers import SAMPLERS, infotext_schedule
    from kekong.models.hashes import short_hash

    request = generated.request
    from_image, masked = request.init_image or request.repose, request.mask or request.repose
    params: dict[str, Any] = {
        "Steps": request.steps, "Sampler": request.sampler,
        "Schedule type": infotext_schedule(request.sampler, request.scheduler),
        "CFG scale": float(request.cfg_scale), "Seed": generated.seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": generated.base.hash, "Model": generated.base.name,
        "VAE hash": short_hash(generated.vae.path) if generated.vae else None,
        "VAE": generated.vae.path.name if generated.vae else None,
        "Variation seed": generated.subseed if generated.subseed is not None else None,
        "Variation seed strength": float(request.subseed_strength) if generated.subseed is not None else None,
        "Seed resize from": f"{request.seed_resize_from_w}x{request.seed_resize_from_h}"
        if request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0 else None,
        "Batch size": request.batch_size if request.batch_size > 1 else None,
        "Batch pos": generated.batch_position if request.batch_size > 1 else None,
        "Denoising strength": float(request.denoising_strength) if from_image or request.enable_hr else None,
        "Clip skip": request.clip_skip if request.clip_skip != 1 else None,
        "ENSD": request.eta_noise_seed_delta if request.eta_noise_seed_delta and SAMPLERS[request.sampler].uses_ensd
        else None,  # A1111 writes it where its sampler's noise follows the delta
        "Mask blur": request.mask_blur if masked else None,
        "Inpaint area": "Only masked" if masked and request.inpaint_only_masked else None,
        "Masked area padding": request.only_masked_padding if masked and request.inpaint_only_masked else None,
        "Lora hashes": _lora_hashes(request),
    }
    if request.enable_hr:
        params.update(_hires_params(request))
    if request.refiner is not None:
        from kekong.models.refs import resolve

        refiner = resolve(request.refiner, "base")
        params["Refiner"] = f"{refiner.name} [{short_hash(refiner.path)}]"
        params["Refiner switch at"] = float(request.refiner_switch_at)
    for unit in generated.units:
        sliders = get_detector(unit.unit.module).sliders if unit.unit.params else ()  # `none` and IP have none
        a, b = [*(unit.unit.params[slider.name] for slider in sliders), -1, -1][:2]
        params[f"ControlNet {unit.index}"] = controlnet_entry(unit.unit, unit.model_label, a, b)
    params.update(detail_params(request.detail))  # ADetailer's keys
    stopped = getattr(generated, "stopped", None)
    if stopped:  # /skip or /interrupt: `Steps` stays the schedule asked for; this says where sampling ended
        where = " of the hires pass" if stopped["pass"] == "hires" else ""
        params["Stopped at step"] = f"{stopped['step']} of {stopped['of']}{where} ({stopped['stop']})"
    if request.repose is not None:
        params.update(repose_params(request.repose))
    if request.fast:  # fast mode's accelerations and interval (kekong's own keys; off: not written)
        params["Fast"] = "+".join(part.value for part in request.fast_parts)
        params["Fast interval"] = request.fast_interval
    if request.rng.value != "GPU":
        params["RNG"] = request.rng.value  # A1111 writes it when not its default (GPU)
    params["Version"] = "kekong"
    return params


def _lora_hashes(request) -> str | None:
    """A1111's `Lora hashes`: name and sha256's first 12 hex digits (names, never paths)."""
    from kekong.models.hashes import model_sha256

    return ", ".join(f"{ref.name}: {model_sha256(ref.path)[:12]}" for _, ref, _ in lora_refs(request)) or None


def _hires_params(request) -> dict[str, Any]:
    """A1111's hires-fix keys."""
    from kekong.generation.hires import second_pass

    second = second_pass(request)
    resized = request.hr_resize_x or request.hr_resize_y
    return {"Hires upscale": None if resized else float(request.hr_scale),
            "Hires resize": f"{second.width}x{second.height}" if resized else None,
            "Hires steps": request.hr_second_pass_steps or None, "Hires upscaler": request.hr_upscaler,
            "Hires sampler": second.sampler if request.hr_sampler_name else None,
            "Hires schedule type": second.scheduler if request.hr_sampler_name or request.hr_scheduler else None,
            "Hires prompt": request.hr_prompt or None, "Hires negative prompt": request.hr_negative_prompt or None}


def describe(generated, record_paths: bool = False) -> tuple[str, dict[str, Any]]:
    """(A1111 infotext, JSON recipe) for a generated image; neither holds a local path unless
    `record_paths` (then the recipe's `local_paths` does)."""
    request = generated.request
    return format_infotext(request.prompt, request.negative_prompt, infotext_params(generated)), \
        build_recipe(generated, record_paths)


def marked(image: Any, path: Path, layers: Layers, register: dict[str, Any] | None, mark_id: int | None = None
           ) -> tuple[Any, dict[str, Any]]:
    """`image` with its watermark embedded (when `layers` asks and it is large enough), the id
    registered for `path` with `register` (kept only with metadata on); and the provenance record
    of the layers, which says why no mark went in when none did."""
    from kekong.provenance import marks, watermark

    record: dict[str, Any] = {"metadata": layers.metadata, "c2pa": layers.c2pa, "watermark": "off"}
    if layers.watermark:
        height, width = image.shape[:2]
        if min(height, width) < watermark.MIN_SIDE:
            record["watermark"] = f"not embedded: {width}x{height} is below {watermark.MIN_SIDE} px"
        else:
            mark_id = marks.register(mark_id, str(path.resolve()), register if layers.metadata else None,
                                     c2pa=layers.c2pa)
            image = watermark.embed(image, mark_id)
            record["watermark"] = marks.format_id(mark_id)
    return image, record


@dataclass
class Described:
    """What a stamp writes beside the pixels, worked out where the image was made: the infotext,
    the recipe, and the inputs the C2PA manifest lists as ingredients."""

    infotext: str
    recipe: dict[str, Any]
    ingredients: list[tuple[str, str, str]]  # (image reference, title, relationship), each reference once
    edited: bool  # made from an init image (C2PA's "edited" rather than "created")


def described(generated, record_paths: bool = False) -> Described:
    infotext, recipe = describe(generated, record_paths)
    return Described(infotext, recipe, ingredients(generated), bool(generated.request.init_image))


def stamp(generated, path: str | Path, recipe_sidecar: bool = False, layers: Layers = Layers(),
          mark_id: int | None = None) -> Path:
    """Write the image (PNG, JPEG or WebP by suffix) with the provenance `layers`; optionally the
    recipe JSON beside it.
    `mark_id` re-uses a watermark id (replay: the same image gets the same mark)."""
    image_format(path)  # a wrong suffix is refused before the recipe is worked out
    return write_stamped(generated.image, described(generated, layers.record_paths), path,
                         local_paths(generated.request), recipe_sidecar, layers, mark_id)


def image_format(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ParameterError(f"{path}: generated images are written as .png, .jpg or .webp")
    return fmt


def write_stamped(image: Any, described: Described, path: str | Path, paths: dict[str, str] | None = None,
                  recipe_sidecar: bool = False, layers: Layers = Layers(), mark_id: int | None = None) -> Path:
    """The writing half of `stamp`, for pixels and a description made elsewhere (`kekong generate`
    through a running `kekong serve`): watermark registered on this machine, chunks, C2PA signed
    here, file written. `paths`: field → local path, remembered for this machine's replay."""
    from kekong.provenance import marks

    path = Path(path)
    fmt = image_format(path)
    infotext, recipe = described.infotext, described.recipe
    if layers.metadata:  # this machine's replay finds the files where they were; nothing is published
        marks.remember_paths(recipe, paths or {})
    image, record = marked(image, path, layers, recipe, mark_id)
    recipe["provenance"] = record
    if fmt == "PNG":
        pnginfo = {"parameters": infotext, RECIPE_KEY: json.dumps(recipe)} if layers.metadata else None
        encoded = encode_image(image, fmt, pnginfo, name=str(path))
    else:  # A1111 keeps the parameters in EXIF UserComment; the recipe rides in the C2PA manifest / sidecar
        encoded = encode_image(image, fmt, name=str(path), user_comment=infotext if layers.metadata else None)
    if layers.c2pa:
        encoded = _sign(encoded, fmt, described, path.name, record,
                        publishable(recipe) if layers.metadata else None, layers.c2pa_thumbnails)
    write_atomic(path, encoded)
    if recipe_sidecar:
        write_atomic(path.with_suffix(".json"), json.dumps(recipe, indent=1).encode())
    return path


def ingredients(generated) -> list[tuple[str, str, str]]:
    """(reference, title, relationship) of every input image, each reference once, in manifest order."""
    request = generated.request
    inputs: list[tuple[str, str, str]] = []
    if request.init_image:
        inputs.append((request.init_image, "init image", "parentOf"))
    if request.mask:
        inputs.append((request.mask, "inpaint mask", "inputTo"))
    for unit in generated.units:
        if unit.unit.image:
            inputs.append((unit.unit.image, f"control unit {unit.index} image", "inputTo"))
    seen: set[str] = set()
    unique = []
    for entry in inputs:
        if entry[0] not in seen:
            seen.add(entry[0])
            unique.append(entry)
    return unique


def _sign(encoded: bytes, fmt: str, described: Described, title: str, record: dict[str, Any],
          recipe: dict[str, Any] | None, thumbnails: bool) -> bytes:
    from kekong.provenance.credentials import Ingredient, sign_image

    found = [Ingredient(name, relationship, source_bytes(reference), _mime(reference))
             for reference, name, relationship in described.ingredients]
    layers = Layers(record["metadata"], record["watermark"] != "off", True, thumbnails)
    assertion = {"layers": {key: value for key, value in asdict(layers).items() if key != "record_paths"},
                 "watermark": record["watermark"], "recipe": recipe}
    return sign_image(encoded, MIME[fmt], title=title, edited=described.edited, ingredients=found,
                      assertion=assertion, thumbnails=thumbnails)


def _mime(reference: str) -> str:
    if reference.startswith("data:"):
        return reference[5:].split(";", 1)[0] or "image/png"
    suffix = Path(reference).suffix.lower()
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}.get(suffix, "image/png")


def read_png_text(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG (parameters, kekong-recipe)."""
    from PIL import Image

    with Image.open(path) as image:
        return dict(getattr(image, "text", {}) or {})

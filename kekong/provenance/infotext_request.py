"""A1111 infotext in: the `parameters` text A1111 (any version since 1.0), sd-webui-controlnet or
kekong wrote, turned into request fields — for `kekong replay` on an A1111 image and for the API's
`infotext` field.

An infotext names models by name and hash, and carries no image: models are matched in this
machine's models folder (by hash first, then by name), and what cannot be matched or is not in the
text (an init image, a mask, a control image) is named, so the caller can supply it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kekong.detail_spec import from_infotext as detail_from_infotext
from kekong.errors import ParameterError
from kekong.provenance.infotext import parse_controlnet, parse_infotext
from kekong.request import GenerationRequest, build_request

# infotext key → (request field, type); keys handled elsewhere are listed in _CONSUMED
_SIMPLE: dict[str, tuple[str, type]] = {
    "Steps": ("steps", int), "Sampler": ("sampler", str), "Schedule type": ("scheduler", str),
    "CFG scale": ("cfg_scale", float), "Seed": ("seed", int), "Variation seed": ("subseed", int),
    "Variation seed strength": ("subseed_strength", float), "Denoising strength": ("denoising_strength", float),
    "Clip skip": ("clip_skip", int), "Mask blur": ("mask_blur", int), "Masked area padding":
    ("only_masked_padding", int), "Hires upscale": ("hr_scale", float), "Hires steps": ("hr_second_pass_steps", int),
    "Hires upscaler": ("hr_upscaler", str), "Hires sampler": ("hr_sampler_name", str),
    "Hires schedule type": ("hr_scheduler", str), "Hires prompt": ("hr_prompt", str),
    "Hires negative prompt": ("hr_negative_prompt", str), "Refiner switch at": ("refiner_switch_at", float),
    "RNG": ("rng", str), "Fast interval": ("fast_interval", int), "ENSD": ("eta_noise_seed_delta", int),
}
_SIZES = {"Size": ("width", "height"), "Seed resize from": ("seed_resize_from_w", "seed_resize_from_h"),
          "Hires resize": ("hr_resize_x", "hr_resize_y")}
# Read by other rules, or facts about the image that need no field (its place in its batch).
_CONSUMED = {"Model", "Model hash", "VAE", "VAE hash", "Refiner", "Inpaint area", "Lora hashes", "Version",
             "Batch size", "Batch pos", "Size-1", "Size-2"}
_WINDOW = ("Guidance Start", "start", float), ("Guidance End", "end", float), ("Weight", "weight", float)


@dataclass
class InfotextRequest:
    """What an infotext gives: request fields, and notes on what it names that kekong did not use."""

    fields: dict[str, Any]
    unused: list[str] = field(default_factory=list)  # `key: value` pairs with no kekong field
    unmatched: list[str] = field(default_factory=list)  # models named but not found here
    warnings: list[str] = field(default_factory=list)  # models found by name whose hash differs
    mode: str = "txt2img"


def infotext_fields(text: str) -> InfotextRequest:
    """Request fields from an A1111 `parameters` text (prompt, negative prompt, key: value line)."""
    prompt, negative, params = parse_infotext(text)
    if not params:
        raise ParameterError("infotext: no `Steps: …, Sampler: …` parameters line (is this A1111's "
                             "`parameters` text?)")
    fields: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative}
    result = InfotextRequest(fields)
    for key, value in params.items():
        if key in _SIMPLE:
            name, kind = _SIMPLE[key]
            fields[name] = _convert(key, value, kind)
        elif key in _SIZES:
            fields.update(zip(_SIZES[key], _size(key, value), strict=True))
        elif key == "Fast":  # kekong's fast mode: its parts joined by +
            fields["fast"], fields["fast_parts"] = True, [part.strip() for part in value.split("+") if part.strip()]
        elif not key.startswith(("ControlNet", "ADetailer ")) and key not in _CONSUMED:
            result.unused.append(f"{key}: {value}")
    fields.setdefault("rng", "GPU")  # A1111 writes RNG only when it is not its default, GPU
    if "hr_scale" in fields or "hr_resize_x" in fields:
        fields["enable_hr"] = True
    elif "denoising_strength" in fields:  # a denoising strength without hires: the image was img2img
        result.mode = "inpaint" if "mask_blur" in fields else "img2img"
    if params.get("Inpaint area") == "Only masked":
        fields["inpaint_only_masked"] = True
    _models(params, fields, result)
    fields["controls"] = [_unit(index, unit, result) for index, unit in enumerate(parse_controlnet(params))]
    detail, unknown = detail_from_infotext(params)  # ADetailer's keys
    result.unused += [f"{key}: {params[key]}" for key in unknown]
    if detail:
        fields["detail"] = detail
    return result


def request_from_infotext(text: str, overrides: dict[str, Any] | None = None,
                          control_images: Sequence[str] = ()) -> tuple[GenerationRequest, list[str]]:
    """A GenerationRequest from an infotext, with `overrides` (model=, init_image=, mask=, …) and
    the control images in unit order; (request, warnings). What the text needs but lacks is refused
    by name: a model not found here (pass model=), the init image and mask of an img2img/inpaint
    image, a txt2img unit's control image."""
    parsed = infotext_fields(text)
    fields = {**parsed.fields, **(overrides or {})}
    missing = [note for note in parsed.unmatched if not _overridden(note, overrides or {})]
    if missing:
        raise ParameterError("infotext: " + "; ".join(missing))
    if parsed.mode != "txt2img" and not fields.get("init_image"):
        raise ParameterError(f"infotext: the image was made with {parsed.mode} (it records a denoising strength"
                             f"{' and a mask blur' if parsed.mode == 'inpaint' else ''}); pass its init image"
                             f"{' and mask' if parsed.mode == 'inpaint' else ''}")
    if parsed.mode == "inpaint" and not fields.get("mask"):
        raise ParameterError("infotext: the image was inpainted (it records a mask blur); pass its mask")
    if parsed.mode != "inpaint":
        for name in ("mask_blur", "only_masked_padding", "inpaint_only_masked"):
            fields.pop(name, None)
    units = fields["controls"]
    if len(control_images) > len(units):
        raise ParameterError(f"{len(control_images)} control images for {len(units)} ControlNet unit(s) in the "
                             "infotext")
    for index, unit in enumerate(units):
        if index < len(control_images):
            unit["image"] = control_images[index]
        elif not fields.get("init_image"):
            raise ParameterError(f"infotext: ControlNet {index} ({unit['module']}) needs its control image, which an "
                                 "infotext does not carry; pass it (in unit order)")
    warnings = [*parsed.warnings, *(f"not used by kekong: {note}" for note in parsed.unused)]
    return build_request(**fields), warnings


def _overridden(note: str, overrides: dict[str, Any]) -> bool:
    role = note.split(" ", 1)[0]
    return {"base": "model", "VAE": "vae", "refiner": "refiner"}.get(role, "") in overrides


def _convert(key: str, value: str, kind: type) -> Any:
    try:
        return kind(float(value)) if kind is int else kind(value)
    except ValueError:
        raise ParameterError(f"infotext: {key}: {value!r} is not a number") from None


def _size(key: str, value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", value)
    if not match:
        raise ParameterError(f"infotext: {key}: {value!r} is not WIDTHxHEIGHT")
    return int(match.group(1)), int(match.group(2))


def _models(params: dict[str, str], fields: dict[str, Any], result: InfotextRequest) -> None:
    """Base model, VAE and refiner, found on this machine by hash, then by name."""
    if "Model" in params or "Model hash" in params:
        found = find_model("base", params.get("Model", ""), params.get("Model hash", ""), result.warnings)
        if found is None:
            result.unmatched.append(f"base model {params.get('Model', '?')} [{params.get('Model hash', '?')}] is not "
                                    "in the models folder (pass the model to use)")
        fields["model"] = found
    if "VAE" in params:
        found = find_model("vae", params["VAE"], params.get("VAE hash", ""), result.warnings)
        if found is None:
            result.unmatched.append(f"VAE {params['VAE']} is not in the models folder (pass the VAE to use)")
        fields["vae"] = found
    if "Refiner" in params:
        name, _, digest = params["Refiner"].partition(" [")
        found = find_model("base", name, digest.rstrip("]"), result.warnings)
        if found is None:
            result.unmatched.append(f"refiner {params['Refiner']} is not in the models folder (pass the refiner)")
        fields["refiner"] = found


def find_model(role: str, name: str, digest: str = "", warnings: list[str] | None = None) -> str | None:
    """A local model's name for `role` by A1111's short hash (sha256, or the legacy 8-hex for single
    files), else by name (noted in `warnings` when the text gave a hash); None when neither is here."""
    from kekong.models.catalog import controlnet_paths, display_name, hashes
    from kekong.models.refs import list_local, strip_hash

    digest = digest.strip().lower()
    candidates = controlnet_paths() if role == "controlnet" else list_local(role)  # with the shipped ones
    if digest:
        for path in candidates:
            sha256, legacy = hashes(path)
            if sha256.startswith(digest) or digest == (legacy or _folder_legacy_hash(path)):
                return display_name(path)
    name = strip_hash(name)
    for path in candidates:
        if name and name in (display_name(path), path.name):
            if digest and warnings is not None:
                warnings.append(f"{role} model {name} found by name, but its hash is not the infotext's {digest}: "
                                "the image will differ")
            return display_name(path)
    return None


def _folder_legacy_hash(folder: Path) -> str | None:
    """sd-webui-controlnet labels a diffusers folder by its first weight file's legacy hash."""
    from kekong.models.hashes import legacy_hash

    weights = next((p for p in sorted(folder.glob("*")) if p.suffix in (".safetensors", ".bin")), None)
    return legacy_hash(weights) if weights else None


def _unit(index: int, unit: dict[str, str], result: InfotextRequest) -> dict[str, Any]:
    """One `ControlNet N` entry as a ControlUnit's fields (threshold A/B → the detector's first two sliders)."""
    from kekong.detect import load_all
    from kekong.detect.registry import get

    module = unit.get("Module", "none").strip() or "none"
    fields: dict[str, Any] = {"module": module}
    for key, name, kind in _WINDOW:
        if key in unit:
            fields[name] = _convert(f"ControlNet {index} {key}", unit[key], kind)
    if "Processor Res" in unit and float(unit["Processor Res"]) > 0:
        fields["res"] = int(float(unit["Processor Res"]))
    for key, name in (("Resize Mode", "resize_mode"), ("Control Mode", "mode")):
        if key in unit:
            fields[name] = unit[key]
    if "Pixel Perfect" in unit:
        fields["pixel_perfect"] = unit["Pixel Perfect"].strip().lower() == "true"
    label = unit.get("Model", "").strip()
    if label and label.lower() != "none":
        name, _, digest = label.partition(" [")
        found = find_model("controlnet", name, digest.rstrip("]"), result.warnings)
        if found is None:
            result.unmatched.append(f"ControlNet {index} model {label} is not in the models folder")
        fields["model"] = found
    if module != "none" and not module.startswith("ip-adapter"):
        load_all()
        sliders = get(module).sliders
        for key, slider in zip(("Threshold A", "Threshold B"), sliders, strict=False):
            if key in unit and float(unit[key]) != -1:
                value = float(unit[key])
                fields.setdefault("params", {})[slider.name] = int(value) if isinstance(slider.default, int) else value
    return fields

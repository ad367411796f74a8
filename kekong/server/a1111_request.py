"""A1111 + sd-webui-controlnet API payloads → kekong's GenerationRequest fields.

Clients send every field, most with its default value: defaults are accepted. A field kekong
does not honour is accepted only while its value could not change the image; any other value
is an error naming the field — never silently dropped (the top complaint about the extension's
API). Field names, aliases and defaults follow A1111's `/sdapi/v1/*` models and
sd-webui-controlnet's ControlNetUnit (including the deprecated `input_image`, `lowvram`,
`guidance`, `guessmode` and integer enums that old clients still send).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kekong.declaration import spec
from kekong.detail_spec import from_adetailer_args
from kekong.detect.extension_names import (
    MODULE_ALIASES,  # the extension's names and labels → kekong's detectors
    default_resolution,
)
from kekong.errors import ParameterError
from kekong.request import ControlUnit
from kekong.server.inputs import NO_URLS, UrlPolicy, image_field, model_name

_NONE = (None, "", "None")
# field → the values kekong accepts (the defaults, or values that do nothing)
_DEFAULT_ONLY: dict[str, tuple[Any, ...]] = {
    "restore_faces": (None, False), "tiling": (None, False),
    "s_min_uncond": (None, 0), "s_churn": (None, 0), "s_tmin": (None, 0), "s_noise": (None, 1),
    "s_tmax": (None, 0, math.inf), "hr_checkpoint_name": (*_NONE, "Use same checkpoint"),
    "firstphase_width": (None, 0), "firstphase_height": (None, 0), "script_name": _NONE, "script_args": (None, ()),
    "firstpass_image": _NONE, "latent_mask": _NONE, "initial_noise_multiplier": (None, 1),
    "mask_round": (None, True), "disable_extra_networks": (None, False),
}
_WHY = {
    "restore_faces": "face restoration (GFPGAN/CodeFormer) is not in kekong",
    "tiling": "tiling is not in kekong",
    "hr_checkpoint_name": "a separate hires checkpoint is not in kekong",
    "script_name": "the X/Y/Z plot is the one selectable script kekong runs",
    "script_args": "script_args go with script_name 'x/y/z plot'",
    "mask_round": "kekong's inpaint masks are not rounded",
    "disable_extra_networks": "<lora:…> tags in the prompt always apply",
}

# override_settings / options keys → request fields
OPTION_FIELDS = {"sd_model_checkpoint": "model", "sd_vae": "vae", "CLIP_stop_at_last_layers": "clip_skip",
                 "randn_source": "rng", "eta_noise_seed_delta": "eta_noise_seed_delta",
                 # kekong's own settings (fast mode) for clients that can send only A1111's fields
                 "kekong_fast": "fast", "kekong_fast_parts": "fast_parts", "kekong_fast_interval": "fast_interval"}
_OPTION_DEFAULT_ONLY = {"samples_format": ("png",), "enable_pnginfo": (True,),
                        "control_net_no_detectmap": (False, True),
                        "show_progress_type": ("Approx cheap", "TAESD", "Full")}  # previews only


@dataclass
class Translated:
    fields: dict[str, Any]  # GenerationRequest fields
    send_maps: bool = True  # append detected maps to `images`, as the extension does
    unit_maps: dict[str, bool] = field(default_factory=dict)  # unit index → its save_detected_map
    send_images: bool = True
    include_init_images: bool = False
    warnings: list[str] = field(default_factory=list)
    strict: bool = False  # unknown unit fields refused too
    grid: Any = None  # script_name "x/y/z plot": the a1111_xyz.GridSpec to run


def translate(body: Any, options: dict[str, Any], urls: UrlPolicy = NO_URLS, strict: bool = False) -> Translated:
    """An A1111 request model (a1111_models; its fields declare the request fields they set) →
    request fields. `options` are the server's /sdapi/v1/options values. Unknown fields are ignored
    and named in the warnings, as A1111 ignores them (`strict`: refused); an `infotext` fills only
    the request fields the client did not send, as A1111 does."""
    route, payload, unknown = body.route, body.payload(), body.unknown()
    warnings = []
    if unknown and strict:
        raise ParameterError(f"unknown field(s) {', '.join(unknown)} for /sdapi/v1/{route} (this server is --strict)")
    if unknown:
        warnings.append(f"ignored unknown field(s) {', '.join(unknown)}")
    grid = _script(body, route)
    for key, accepted in _DEFAULT_ONLY.items():
        if grid is not None and key in ("script_name", "script_args"):
            continue
        if key in payload and not _is_default(payload[key], accepted):
            raise ParameterError(f"{key}: {payload[key]!r} is not supported ({_WHY.get(key, 'not in kekong')}); "
                                 f"send the default or leave it out")
    fields: dict[str, Any] = body.request_fields()
    fields["sampler"] = body.sampler_name or body.sampler_index or type(body).model_fields["sampler_index"].default
    if not fields.get("enable_hr") and route == "txt2img":
        fields.pop("denoising_strength", None)  # only the hires pass reads it in txt2img
    refiner = model_name(body.refiner_checkpoint, "refiner_checkpoint")
    if refiner is not None:
        fields["refiner"] = refiner
        if body.refiner_switch_at is not None:
            fields["refiner_switch_at"] = body.refiner_switch_at
    _apply_options(fields, options, "options")
    _apply_options(fields, body.override_settings or {}, "override_settings")
    _check_eta(body.eta, fields["sampler"])
    translated = Translated(fields, send_images=bool(body.send_images), warnings=warnings, strict=strict,
                            include_init_images=bool(getattr(body, "include_init_images", False)), grid=grid)
    if grid is not None:
        warnings += grid.warnings
        translated.send_maps = False  # A1111's X/Y/Z plot answers with its grid and cells only
    if body.infotext:  # first, as A1111: the styles then apply to the prompt it gives
        _apply_infotext(str(body.infotext), fields, body.sent(), body.override_settings or {}, translated,
                        body.body_targets())
    _apply_styles(fields, body.styles)
    if options.get("control_net_no_detectmap"):
        translated.send_maps = False
    if route == "img2img":
        _img2img(body, fields, urls)
    _scripts(body.alwayson_scripts or {}, translated, urls)
    return translated


def _script(body: Any, route: str) -> Any:
    """`script_name`: A1111's X/Y/Z plot (its GridSpec), none (None), or a script kekong does not run."""
    name = body.script_name
    if name in _NONE:
        return None
    from kekong.server.a1111_xyz import SCRIPT_TITLE, from_script_args

    if str(name).strip().lower() != SCRIPT_TITLE:
        raise ParameterError(f"script_name: {name!r} is not a script kekong runs; it runs {SCRIPT_TITLE!r} (and the "
                             "ControlNet and ADetailer units in alwayson_scripts)")
    return from_script_args(body.script_args, route)


def styles_file():
    """A1111's `styles.csv`, kept in kekong's data folder (KEKONG_DATA_DIR)."""
    from kekong.provenance.marks import data_dir

    return data_dir() / "styles.csv"


def _apply_styles(fields: dict[str, Any], names: Any) -> None:
    """A1111's `styles`: each named style of styles.csv merged into the prompts, in order."""
    if not names:
        return
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ParameterError("styles: expected a list of style names")
    from kekong.prompt.styles import apply_styles, read_styles

    fields["prompt"], fields["negative_prompt"] = apply_styles(
        fields.get("prompt", ""), fields.get("negative_prompt", ""), names, read_styles(styles_file()))


# request field → the override setting that sets it: an infotext fills it only when that is not sent
_SETTING_OF = {target: key for key, target in OPTION_FIELDS.items()}


def _apply_infotext(text: str, fields: dict[str, Any], sent: set[str], overrides: dict[str, Any],
                    translated: Translated, body_targets: set[str]) -> None:
    """A1111's `infotext` field: its parameters fill every request field the client did not send
    (`sent`: request field names, from the model's declarations; `body_targets`: the request fields a
    body field sets — fast mode's can come as a field or as a setting)."""
    from kekong.provenance.infotext_request import infotext_fields

    parsed = infotext_fields(text)
    for name, value in parsed.fields.items():
        if name == "controls":
            if value:
                translated.warnings.append("infotext: its ControlNet units are not applied (an infotext carries "
                                           "no control image); send them in alwayson_scripts")
            continue
        setting = _SETTING_OF.get(name)
        if setting is not None and setting in overrides:
            continue
        if name in sent and (setting is None or name in body_targets):
            continue
        if name in ("model", "vae", "refiner") and value is None:
            continue  # named but not found here: reported below
        fields[name] = value
    for note in parsed.unmatched:
        if not note.startswith("ControlNet"):
            raise ParameterError(f"infotext: {note}; send override_settings.sd_model_checkpoint (or the field) "
                                 "to choose one")
    translated.warnings += [f"infotext: {w}" for w in parsed.warnings]
    translated.warnings += [f"infotext: not used by kekong: {u}" for u in parsed.unused]


def _is_default(value: Any, accepted: tuple[Any, ...]) -> bool:
    if isinstance(value, list):
        value = tuple(value)
    for candidate in accepted:
        if isinstance(candidate, bool) or isinstance(value, bool):  # True is not 1 here
            if value is candidate:
                return True
        elif value == candidate:
            return True
    return False


def _apply_options(fields: dict[str, Any], settings: Any, where: str) -> None:
    if not isinstance(settings, dict):
        raise ParameterError(f"{where}: expected an object of setting → value")
    for key, value in settings.items():
        if key in OPTION_FIELDS:
            target = OPTION_FIELDS[key]
            fields[target] = model_name(value, f"{where}.{key}") if target in ("model", "vae") else value
        elif key in _OPTION_DEFAULT_ONLY:
            if value not in _OPTION_DEFAULT_ONLY[key]:
                raise ParameterError(f"{where}.{key}: {value!r} is not supported; accepted: "
                                     f"{', '.join(map(repr, _OPTION_DEFAULT_ONLY[key]))}")
        elif where == "override_settings":
            raise ParameterError(f"{where}.{key}: kekong does not have this setting; leave it out")


def _check_eta(eta: Any, sampler: str) -> None:
    """eta only acts in DDIM (default 0) and the ancestral/SDE samplers (default 1)."""
    if eta is None:
        return
    words = str(sampler).lower().split()
    if words[:1] == ["ddim"] and eta != 0:
        raise ParameterError(f"eta: {eta} is not supported; kekong's DDIM runs with eta 0")
    if ("a" in words or any("sde" in w for w in words)) and eta != 1:
        raise ParameterError(f"eta: {eta} is not supported; kekong's ancestral and SDE samplers run with eta 1")


def _img2img(body: Any, fields: dict[str, Any], urls: UrlPolicy) -> None:
    """The img2img fields that feed the request through a conversion (init image, mask and its blur)."""
    images = body.init_images
    if not isinstance(images, list) or not images:
        raise ParameterError("init_images: img2img needs one base64 image")
    if len(images) > 1:
        raise ParameterError(f"init_images: {len(images)} images sent; kekong's img2img takes one "
                             "(use the job API once per image)")
    fields["init_image"] = image_field(images[0], "init_images[0]", urls)
    fields.setdefault("denoising_strength", 0.75)
    if body.mask:
        fields["mask"] = image_field(body.mask, "mask", urls)
        blur_x, blur_y = body.mask_blur_x, body.mask_blur_y
        if body.mask_blur is not None:
            blur_x = blur_y = body.mask_blur
        if blur_x != blur_y:
            raise ParameterError(f"mask_blur_x ({blur_x}) and mask_blur_y ({blur_y}) differ; kekong blurs the "
                                 "mask the same both ways")
        fields["mask_blur"] = blur_x
        fields["inpaint_only_masked"] = bool(body.inpaint_full_res)
        fields["mask_invert"] = bool(body.inpainting_mask_invert)


def _scripts(scripts: Any, translated: Translated, urls: UrlPolicy) -> None:
    if not isinstance(scripts, dict):
        raise ParameterError("alwayson_scripts: expected an object of script name → {\"args\": [...]}")
    for name, script in scripts.items():
        args = script.get("args", []) if isinstance(script, dict) else script
        if name.lower() == "controlnet":  # A1111 matches script names case-insensitively
            if not isinstance(args, list):
                raise ParameterError(f"alwayson_scripts.{name}.args: expected a list of control units")
            units = []
            for index, raw in enumerate(args):
                unit = control_unit(raw, f"alwayson_scripts.{name}.args[{index}]", urls, translated)
                if unit is not None:
                    translated.unit_maps[str(len(units))] = unit.pop("_save_map")
                    units.append(unit)
            translated.fields["controls"] = units
        elif name.lower() == "adetailer":  # the detailer, under ADetailer's argument names
            where = f"alwayson_scripts.{name}.args"
            translated.fields["detail"] = [d.model_dump() for d in from_adetailer_args(args, where)]
        elif args:
            raise ParameterError(f"alwayson_scripts.{name}: kekong runs only the ControlNet and ADetailer scripts; "
                                 "leave this script out")


# -- ControlNet units --------------------------------------------------------------------------
_UNIT_ALIASES = {"input_image": "image", "lowvram": "low_vram", "guidance": "guidance_end", "mask_image": "mask"}
_UNIT_NO_EFFECT = {"low_vram", "is_ui", "batch_images", "output_dir", "generated_image",
                   "batch_image_files", "batch_keyframe_idx", "batch_modifiers"}  # read in batch mode only
_UNIT_DEFAULT_ONLY: dict[str, tuple[Any, ...]] = {
    "advanced_weighting": (None, ()), "ipadapter_input": (None,),
    "loopback": (None, False), "use_preview_as_input": (None, False),
    "input_mode": (None, "simple", "SIMPLE", "InputMode.SIMPLE"),  # batch/merge input modes are not in kekong
    "inpaint_crop_input_image": (None, True), "animatediff_batch": (None, False),
    "pulid_mode": (None, "Fidelity", "fidelity", "PuLIDMode.FIDELITY"), "batch_mask_dir": (None, ""),
}
_UNIT_KNOWN = {"enabled", "module", "model", "weight", "image", "mask", "effective_region_mask", "resize_mode",
               "processor_res", "threshold_a", "threshold_b", "guidance_start", "guidance_end", "pixel_perfect",
               "control_mode", "guessmode", "hr_option", "save_detected_map", "union_control_type"}


def control_unit(raw: Any, where: str, urls: UrlPolicy, translated: Translated) -> dict[str, Any] | None:
    """One sd-webui-controlnet unit → ControlUnit fields (plus `_save_map`); None when disabled."""
    from kekong.detect.registry import get

    if not isinstance(raw, dict):
        raise ParameterError(f"{where}: expected a control unit object")
    values = dict(raw)
    for alias, key in _UNIT_ALIASES.items():
        if alias in values:
            if key in values:
                raise ParameterError(f"{where}: both {alias!r} (deprecated) and {key!r} are set")
            values[key] = values.pop(alias)
    unknown = sorted(set(values) - _UNIT_KNOWN - _UNIT_NO_EFFECT - set(_UNIT_DEFAULT_ONLY))
    if unknown and translated.strict:
        raise ParameterError(f"{where}: unknown field(s) {', '.join(unknown)} (this server is --strict)")
    if unknown:
        translated.warnings.append(f"{where}: ignored unknown field(s) {', '.join(unknown)}")
    for key, accepted in _UNIT_DEFAULT_ONLY.items():
        if key in values and not _is_default(values[key], accepted):
            raise ParameterError(f"{where}.{key}: {values[key]!r} is not supported by kekong; send the default")
    if not values.get("enabled", True):
        return None
    module = str(values.get("module") or "none").strip()
    module = MODULE_ALIASES.get(module.lower(), module)
    unit: dict[str, Any] = {"module": module, "params": {}, "_save_map": bool(values.get("save_detected_map", True))}
    unit["model"] = model_name(values.get("model"), f"{where}.model")
    for key, target in (("weight", "weight"), ("guidance_start", "start"), ("guidance_end", "end"),
                        ("pixel_perfect", "pixel_perfect"), ("resize_mode", "resize_mode"), ("hr_option", "hr_option")):
        if values.get(key) is not None:
            unit[target] = values[key]
    if values.get("union_control_type") not in (None, "", "Unknown"):
        unit["union_type"] = values["union_control_type"]
    if values.get("control_mode") is not None:
        unit["mode"] = values["control_mode"]
    elif values.get("guessmode"):
        unit["mode"] = 2  # the deprecated guess mode is "ControlNet is more important"
    image, mask = _unit_image(values.get("image"), values.get("mask"), where, urls)
    if image is not None:
        unit["image"] = image
    if mask is not None:
        _refuse_unit_mask(mask, where)
    if values.get("effective_region_mask"):
        unit["mask"] = image_field(values["effective_region_mask"], f"{where}.effective_region_mask", urls)
    from kekong.models.ip_adapter import is_ip_module

    if module == "none" or is_ip_module(module):  # no detector sliders to map
        return unit
    detector = get(module)  # an unknown module fails here, with suggestions
    res, declared = values.get("processor_res", -1), spec("res", ControlUnit)
    default = default_resolution(module, int(declared.default))  # softedge_anyline's is 1280
    if res is not None and res != -1 and declared.ge <= float(res) <= declared.le:
        unit["res"] = int(res)
    else:
        if res is not None and res != -1:
            translated.warnings.append(f"{where}.processor_res {res} is out of range ({declared.bounds_text()}); "
                                       f"used {default} (as the extension)")
        if default != declared.default:
            unit["res"] = default
    for key, param in zip(("threshold_a", "threshold_b"), detector.sliders, strict=False):
        value = values.get(key, -1)
        if value is None or value == -1:
            continue
        try:
            unit["params"][param.name] = param.coerce(module, value)
        except ParameterError as error:  # the extension resets an out-of-range slider to its default
            translated.warnings.append(f"{where}.{key}: {error}; used the default {param.default}")
    return unit


def _unit_image(image: Any, mask: Any, where: str, urls: UrlPolicy) -> tuple[str | None, str | None]:
    """The extension's image shapes: base64, {"image", "mask"}, [image, mask]."""
    if isinstance(image, dict):
        image, mask = image.get("image"), image.get("mask", mask)
    elif isinstance(image, (list, tuple)):
        if len(image) == 1 and isinstance(image[0], dict):
            image, mask = image[0].get("image"), image[0].get("mask", mask)
        elif len(image) == 2 and all(isinstance(i, str) or i is None for i in image):
            image, mask = image
        else:
            raise ParameterError(f"{where}.image: one image per unit ({len(image)} given)")
    checked = image_field(image, f"{where}.image", urls) if image else None
    checked_mask = image_field(mask, f"{where}.mask", urls) if mask else None
    return checked, checked_mask


def _refuse_unit_mask(mask: str, where: str) -> None:
    """The A1111 UI sends an all-black mask beside every image: that does nothing. A drawn mask
    on a unit image is read by the extension's inpaint and IP-Adapter paths only."""
    from kekong.io import image_source, load_image

    if load_image(image_source(mask)).max() > 0:
        raise ParameterError(f"{where}.mask: a mask drawn on a unit's image is not read by kekong; use "
                             "effective_region_mask for a region, or the img2img mask for inpainting")

"""What sd-webui-controlnet adds to A1111's parameters dict when an infotext is pasted or read by
`/sdapi/v1/png-info` (its `Infotext.on_infotext_pasted` callback): for every key starting with
"ControlNet", the unit `ControlNetUnit.parse` reads from its value, as `"<key> <field>": value`
for the 11 infotext fields (module, model, weight, resize_mode, processor_res, threshold_a,
threshold_b, guidance_start, guidance_end, pixel_perfect, control_mode).

The parse follows the extension's (internal_controlnet/args.py, pydantic 1 as A1111 1.10 ships):
"Key: value" items split at commas, keys "Processor Res" → processor_res, values "True"/"False"
→ bools, then int, then float, else text; the unit's validation then applies — an unknown
module, a weight outside [0, 2], a guidance window outside [0, 1] or start > end, a value
pydantic cannot coerce, or an item that is not one "key: value" pair leaves that unit out (the
extension logs a warning and adds nothing for it); a processor_res / threshold_a / threshold_b
outside its preprocessor's slider range becomes the slider's default (bound_check_params), a
hidden slider being 0–1 with default 0.5.
"""

from __future__ import annotations

import math
from typing import Any

from kekong.detect.extension_names import Preprocessor, lookup

FIELDS = ("module", "model", "weight", "resize_mode", "processor_res", "threshold_a", "threshold_b",
          "guidance_start", "guidance_end", "pixel_perfect", "control_mode")
DEFAULTS: dict[str, Any] = {"module": "none", "model": "None", "weight": 1.0, "resize_mode": "Crop and Resize",
                            "processor_res": -1, "threshold_a": -1, "threshold_b": -1, "guidance_start": 0.0,
                            "guidance_end": 1.0, "pixel_perfect": False, "control_mode": "Balanced"}
RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")
RESIZE_ALIASES = {"Inner Fit (Scale to Fit)": "Crop and Resize", "Outer Fit (Shrink to Fit)": "Resize and Fill",
                  "Scale to Fit (Inner Fit)": "Crop and Resize", "Envelope (Outer Fit)": "Resize and Fill"}
CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
# the unit's other enum fields: a value outside these fails the parse too
OTHER_ENUMS: dict[str, tuple[str, ...]] = {
    "input_mode": ("simple", "batch", "merge"), "hr_option": ("Both", "Low res only", "High res only"),
    "pulid_mode": ("Fidelity", "Extremely style"),
}
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
HIDDEN = (0.0, 1.0, 0.5)  # a PreprocessorParameter(visible=False): minimum, maximum, value
HIDDEN_RESOLUTION = {"shuffle": 512}  # shuffle fixes its hidden resolution at 512


class _Invalid(ValueError):
    pass


def controlnet_pasted(results: dict[str, Any]) -> dict[str, Any]:
    """`results` (A1111's parameters dict) with the extension's per-field keys added, in place."""
    updates: dict[str, Any] = {}
    for key, value in results.items():
        if not key.startswith("ControlNet") or not isinstance(value, str):
            continue
        unit = parse_unit(value)
        if unit is not None:
            updates.update({f"{key} {field}": unit[field] for field in FIELDS})
    results.update(updates)
    return results


def parse_unit(text: str) -> dict[str, Any] | None:
    """The 11 infotext fields of the unit ControlNetUnit.parse makes of `text`; None where it fails."""
    values: dict[str, Any] = {}
    for item in text.split(","):
        parts = item.strip().split(": ")
        if len(parts) != 2:
            return None
        values["_".join(word.lower() for word in parts[0].split(" "))] = parse_value(parts[1])
    if "enabled" in values:  # ControlNetUnit(enabled=True, **values): a second `enabled` is a TypeError
        return None
    try:
        return _validated(values)
    except _Invalid:
        return None


def parse_value(value: str) -> str | float | int | bool:
    """The extension's parse_value."""
    if value in ("True", "False"):
        return value == "True"
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def _validated(values: dict[str, Any]) -> dict[str, Any]:
    for field, choices in OTHER_ENUMS.items():
        if field in values and values[field] not in choices:
            raise _Invalid(field)
    unit = {**DEFAULTS}
    given = {field: values[field] for field in FIELDS if field in values}
    preprocessor = lookup(given["module"]) if isinstance(given.get("module"), str) else None
    if "module" in given and preprocessor is None:
        raise _Invalid("module")
    preprocessor = preprocessor or lookup("none")
    if "model" in given:
        unit["model"] = _text(given["model"])
    for field in ("weight", "threshold_a", "threshold_b", "guidance_start", "guidance_end"):
        if field in given:
            unit[field] = _float(given[field])
    if "processor_res" in given:
        unit["processor_res"] = _int(given["processor_res"])
    if "pixel_perfect" in given:
        unit["pixel_perfect"] = _bool(given["pixel_perfect"])
    if "resize_mode" in given:
        mode = given["resize_mode"]
        if not isinstance(mode, str) or RESIZE_ALIASES.get(mode, mode) not in RESIZE_MODES:
            raise _Invalid("resize_mode")
        unit["resize_mode"] = RESIZE_ALIASES.get(mode, mode)
    if "control_mode" in given:
        if given["control_mode"] not in CONTROL_MODES:
            raise _Invalid("control_mode")
        unit["control_mode"] = given["control_mode"]
    if not 0 <= unit["weight"] <= 2 or not 0 <= unit["guidance_start"] <= 1 or not 0 <= unit["guidance_end"] <= 1:
        raise _Invalid("bounds")
    unit["module"] = given.get("module", "none")
    for field, (low, high, default) in zip(("processor_res", "threshold_a", "threshold_b"), _slots(preprocessor),
                                           strict=True):
        if unit[field] < low or unit[field] > high:
            unit[field] = default
    if unit["guidance_start"] > unit["guidance_end"]:
        raise _Invalid("guidance")
    return unit


def _slots(preprocessor: Preprocessor) -> list[tuple[float, float, float]]:
    """(minimum, maximum, default) of slider_resolution, slider_1, slider_2: the visible sliders are
    listed in that order, the resolution one labelled "Resolution"."""
    sliders = list(preprocessor.sliders)
    slots: list[tuple[float, float, float]] = []
    if sliders and sliders[0].label == "Resolution":
        resolution = sliders.pop(0)
        slots.append((resolution.minimum, resolution.maximum, resolution.value))
    else:
        slots.append((*HIDDEN[:2], HIDDEN_RESOLUTION.get(preprocessor.name, HIDDEN[2])))
    for _ in range(2):
        slider = sliders.pop(0) if sliders else None
        slots.append((slider.minimum, slider.maximum, slider.value) if slider else HIDDEN)
    return slots


def _float(value: Any) -> float:
    """pydantic 1's float: anything float() takes."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _Invalid("float") from None


def _int(value: Any) -> int:
    """pydantic 1's int: int() of it (a float is truncated)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid("int")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _Invalid("int") from None


def _bool(value: Any) -> bool:
    """pydantic 1's bool: True/False, 0/1, and the usual words."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _Invalid("bool")


def _text(value: Any) -> str:
    """pydantic 1's str: text as it is, numbers (bools too: they are ints) as str()."""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise _Invalid("str")

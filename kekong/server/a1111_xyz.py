"""A1111's `script_name: "x/y/z plot"` with its `script_args`, as A1111 1.10 defines them, turned
into kekong's X/Y/Z grid (kekong.generation.grid: the axes, range syntax and cells are its own).

`script_args` is the script's `run()` arguments in order: X type, X values, X values (dropdown),
the same for Y and Z, then draw legend, include lone images, include sub grids, keep -1 for
seeds, margin size, use text inputs instead of dropdowns, use raw text lines. An axis type is an
index into A1111 1.10's axis list for the route (txt2img and img2img list different ones), the
ControlNet extension's ten axes appended as sd-webui-controlnet appends them; kekong also takes
the axis's label. An axis kekong does not run is refused by name."""

from __future__ import annotations

import csv
import io
from typing import Any

from kekong.errors import ParameterError
from kekong.generation.grid import AXIS_TYPES, GridSpec, axis_text, parse_axis

SCRIPT_TITLE = "x/y/z plot"  # A1111 matches script names by their lower-cased title

# A1111 1.10 scripts/xyz_grid.py `axis_options`, in order; an entry for one route only says which.
_A1111_AXES: list[tuple[str, str | None]] = [
    ("Nothing", None), ("Seed", None), ("Var. seed", None), ("Var. strength", None), ("Steps", None),
    ("Hires steps", "txt2img"), ("CFG Scale", None), ("Image CFG Scale", "img2img"), ("Prompt S/R", None),
    ("Prompt order", None), ("Sampler", "txt2img"), ("Hires sampler", "txt2img"), ("Sampler", "img2img"),
    ("Checkpoint name", None), ("Negative Guidance minimum sigma", None), ("Sigma Churn", None),
    ("Sigma min", None), ("Sigma max", None), ("Sigma noise", None), ("Schedule type", None),
    ("Schedule min sigma", None), ("Schedule max sigma", None), ("Schedule rho", None), ("Eta", None),
    ("Clip skip", None), ("Denoising", None), ("Initial noise multiplier", None), ("Extra noise", None),
    ("Hires upscaler", "txt2img"), ("Cond. Image Mask Weight", "img2img"), ("VAE", None), ("Styles", None),
    ("UniPC Order", None), ("Face restore", None), ("Token merging ratio", None),
    ("Token merging ratio high-res", None), ("Always discard next-to-last sigma", None),
    ("SGM noise multiplier", None), ("Refiner checkpoint", None), ("Refiner switch at", None),
    ("RNG source", None),
    # sd-webui-controlnet scripts/xyz_grid_support.py, appended to the list when it loads
    ("[ControlNet] Enabled", None), ("[ControlNet] Model", None), ("[ControlNet] Weight", None),
    ("[ControlNet] Guidance Start", None), ("[ControlNet] Guidance End", None),
    ("[ControlNet] Control Mode", None), ("[ControlNet] Resize Mode", None), ("[ControlNet] Preprocessor", None),
    ("[ControlNet] Pre Resolution", None), ("[ControlNet] Pre Threshold A", None),
    ("[ControlNet] Pre Threshold B", None),
]
# axes whose A1111 UI is a dropdown: their values come from the dropdown argument unless csv_mode
_DROPDOWN = {"Sampler", "Hires sampler", "Checkpoint name", "Schedule type", "Hires upscaler", "VAE", "Styles",
             "Always discard next-to-last sigma", "SGM noise multiplier", "Refiner checkpoint", "RNG source",
             "[ControlNet] Enabled", "[ControlNet] Model", "[ControlNet] Control Mode", "[ControlNet] Resize Mode",
             "[ControlNet] Preprocessor"}
# the script's run() arguments after the three axes, with the defaults of its UI (A1111 fills a short list so)
_FLAGS = ("draw_legend", "include_lone_images", "include_sub_grids", "no_fixed_seeds", "margin_size", "csv_mode",
          "raw_mode")
_FLAG_DEFAULTS: dict[str, Any] = {"draw_legend": True, "include_lone_images": False, "include_sub_grids": False,
                                  "no_fixed_seeds": False, "margin_size": 0, "csv_mode": False, "raw_mode": False}
_AXIS_DEFAULTS = [1, "", [], 0, "", [], 0, "", []]  # X: Seed, Y and Z: Nothing


def axis_labels(route: str) -> list[str]:
    """A1111 1.10's axis types for `route` (txt2img or img2img), by index."""
    return [label for label, only in _A1111_AXES if only in (None, route)]


def supported(label: str) -> bool:
    return label.lower() in AXIS_TYPES


def from_script_args(args: Any, route: str) -> GridSpec:
    """A1111's x/y/z plot `script_args` → the grid to run; every axis parsed (and refused by name)."""
    if not isinstance(args, list):
        raise ParameterError("script_args: expected the X/Y/Z plot's argument list (x_type, x_values, …)")
    if len(args) > len(_AXIS_DEFAULTS) + len(_FLAGS):
        raise ParameterError(f"script_args: {len(args)} values; A1111 1.10's X/Y/Z plot takes "
                             f"{len(_AXIS_DEFAULTS) + len(_FLAGS)}")
    full = [*args, *(_AXIS_DEFAULTS + list(_FLAG_DEFAULTS.values()))[len(args):]]
    flags = dict(zip(_FLAGS, full[len(_AXIS_DEFAULTS):], strict=True))
    for name in ("draw_legend", "include_lone_images", "include_sub_grids", "no_fixed_seeds", "csv_mode",
                 "raw_mode"):
        if not isinstance(flags[name], bool):
            raise ParameterError(f"script_args[{len(_AXIS_DEFAULTS) + _FLAGS.index(name)}] ({name}): expected "
                                 f"true or false, got {flags[name]!r}")
    labels = axis_labels(route)
    axes = [_axis(full[3 * i:3 * i + 3], 3 * i, letter, labels, route, flags) for i, letter in enumerate("XYZ")]
    while len(axes) > 1 and axes[-1] is None:  # trailing Nothing axes are no axes; inner ones keep their place
        axes.pop()
    texts = [axis or "Nothing" for axis in axes]
    spec = GridSpec(texts, fixed_seeds=not flags["no_fixed_seeds"], lone_images=flags["include_lone_images"],
                    sub_grids=flags["include_sub_grids"])
    if not flags["draw_legend"]:
        spec.warnings.append("script_args[9] draw_legend false: kekong's grid always carries its labels")
    if flags["margin_size"] not in (0, None):
        spec.warnings.append(f"script_args[13] margin_size {flags['margin_size']!r}: kekong's grid keeps its own "
                             "margins")
    return spec


def _axis(arg: list[Any], at: int, letter: str, labels: list[str], route: str, flags: dict[str, Any]) -> str | None:
    """One axis's (type, values, dropdown values) → `AXIS:VALUES`, or None for Nothing."""
    kind, values, dropdown = arg
    label = _label(kind, at, letter, labels, route)
    if label == "Nothing":
        return None
    if not supported(label):
        runs = ", ".join(f"{i} {name}" for i, name in enumerate(labels) if supported(name) and name != "Nothing")
        raise ParameterError(f"script_args[{at}]: {letter} type {kind!r} is {label!r}, an X/Y/Z axis kekong does "
                             f"not run; it runs ({route} indices): {runs}")
    if label in _DROPDOWN and not flags["csv_mode"] and dropdown:
        if not isinstance(dropdown, list) or not all(isinstance(v, (str, int, float)) for v in dropdown):
            raise ParameterError(f"script_args[{at + 2}]: {letter} values (dropdown) must be a list of values")
        items = [str(v) for v in dropdown]
    elif isinstance(values, (str, int, float)) and not isinstance(values, bool):
        text = str(values)
        if flags["raw_mode"] and "\n" in text.strip():
            items = text.strip().split("\n")  # A1111's "Use raw text lines": one value a line
        else:
            return _checked(f"{label}:{text}", at + 1, letter)
    else:
        raise ParameterError(f"script_args[{at + 1}]: {letter} values must be a string such as \"1-3\" or "
                             f"\"red, blue\", got {values!r}")
    stream = io.StringIO()
    csv.writer(stream).writerow(items)
    return _checked(f"{label}:{stream.getvalue().strip()}", at + 1, letter)


def _label(kind: Any, at: int, letter: str, labels: list[str], route: str) -> str:
    if isinstance(kind, int) and not isinstance(kind, bool):
        if not 0 <= kind < len(labels):
            raise ParameterError(f"script_args[{at}]: {letter} type {kind} is not an axis: A1111 1.10's {route} "
                                 f"X/Y/Z plot has types 0–{len(labels) - 1}")
        return labels[kind]
    if isinstance(kind, str):  # kekong also takes the label (indices move when extensions add axes)
        for name in labels:
            if name.lower() == kind.strip().lower():
                return name
        if kind.strip().lower() in AXIS_TYPES:
            return AXIS_TYPES[kind.strip().lower()].name
    raise ParameterError(f"script_args[{at}]: {letter} type {kind!r}: expected an axis index (0–{len(labels) - 1}) "
                         f"or an axis name such as 'Seed'")


def _checked(text: str, at: int, letter: str) -> str:
    try:
        axis = parse_axis(text)
    except ParameterError as error:
        raise ParameterError(f"script_args[{at}]: {letter} values: {error}") from None
    return axis_text(axis)


def script_info_args(route: str) -> list[dict[str, Any]]:
    """The script's arguments as A1111's /script-info lists them (label, value, range, choices)."""
    def arg(label: str, value: Any, choices: list[str] | None = None, low: Any = None, high: Any = None,
            step: Any = None) -> dict[str, Any]:
        return {"label": label, "value": value, "minimum": low, "maximum": high, "step": step, "choices": choices}

    labels = axis_labels(route)
    axes = []
    for letter, default in (("X", "Seed"), ("Y", "Nothing"), ("Z", "Nothing")):
        axes += [arg(f"{letter} type", default, labels), arg(f"{letter} values", ""), arg(f"{letter} values", None)]
    return [*axes, arg("Draw legend", True), arg("Include Sub Images", False), arg("Include Sub Grids", False),
            arg("Keep -1 for seeds", False), arg("Grid margins (px)", 0, None, 0, 500, 2),
            arg("Use text inputs instead of dropdowns", False), arg("Use raw text lines", False)]

"""The control unit panels: one tab per unit (up to the request's MAX_UNITS, as many shown as the
"Multi-ControlNet: max models" setting says), each with its detector's own parameters.

A detector's parameters are the ones it declares in the registry (kekong/detect/registry.py): a
unit has a fixed set of parameter slots (as many numeric sliders, checkboxes and choice lists as
the detector declaring the most of each needs), and picking a detector relabels, re-ranges and
shows the slots it uses — sd-webui-controlnet's threshold_a / threshold_b, for every parameter.
Free-text parameters (a weights file, a model id on the server) are left at the server's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kekong.choices import MAX_UNITS
from kekong.detect.registry import Detector, Param
from kekong.request import ControlUnit
from kekong.ui.widgets import Widgets

DEFAULT_UNITS = 3  # A1111's "Multi-ControlNet: max models amount" default
BASE = ("enabled", "image", "module", "model", "weight", "start", "end", "mode", "resize", "res", "region", "perfect")


def _kind(param: Param) -> str | None:
    """Which slot a parameter takes: numeric, flag or choice; None for free text (not offered)."""
    if param.choices:
        return "choice"
    if isinstance(param.default, bool):
        return "flag"
    if isinstance(param.default, (int, float)):
        return "number"
    return None


def detector_for(module: str) -> Detector | None:
    """The registered detector of a module name, or None (none, IP-Adapter encoders, unknown names)."""
    from kekong.detect import DETECTORS, load_all

    load_all()
    return DETECTORS.get(module)


def shown_params(module: str) -> dict[str, list[Param]]:
    """The detector's parameters the UI offers, by slot kind, in declaration order."""
    found: dict[str, list[Param]] = {"number": [], "flag": [], "choice": []}
    detector = detector_for(module)
    for param in detector.params if detector else ():
        kind = _kind(param)
        if kind:
            found[kind].append(param)
    return found


def slot_counts() -> dict[str, int]:
    """How many slots of each kind a unit needs: the most any registered detector declares."""
    from kekong.detect import list_detectors

    counts = {"number": 0, "flag": 0, "choice": 0}
    for detector in list_detectors():
        for kind, params in shown_params(detector.name).items():
            counts[kind] = max(counts[kind], len(params))
    return counts


def slider_step(param: Param) -> float:
    """1 for an integer parameter; else about a hundredth of the range, rounded to a power of ten."""
    if isinstance(param.default, int):
        return 1
    span = (param.max if param.max is not None else 1.0) - (param.min if param.min is not None else 0.0)
    return 10.0 ** math.floor(math.log10(span / 100)) if span > 0 else 0.01


def slot_updates(module: str, counts: dict[str, int], values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Gradio updates for every slot (numbers, flags, choices in that order) when `module` is picked:
    a used slot takes the parameter's label, help, range or choices and its value from `values`
    (an infotext's), else its default; the rest are hidden."""
    import gradio as gr

    params = shown_params(module)
    updates = []
    for kind in ("number", "flag", "choice"):
        for index in range(counts[kind]):
            if index >= len(params[kind]):
                updates.append(gr.update(visible=False))
                continue
            param = params[kind][index]
            common = {"visible": True, "label": param.name.replace("_", " "), "info": param.help,
                      "value": (values or {}).get(param.name, param.default)}
            if kind == "number":
                common.update(minimum=param.min if param.min is not None else 0,
                              maximum=param.max if param.max is not None else max(1, 10 * param.default),
                              step=slider_step(param))
            elif kind == "choice":
                common["choices"] = list(param.choices or ())
            updates.append(gr.update(**common))
    return updates


def unit_params(module: str, slots: list[Any], counts: dict[str, int]) -> dict[str, Any]:
    """The detector parameters a unit's slots hold, only those that differ from the declared
    default (so a unit left alone sends what it sent before the slots existed)."""
    params = shown_params(module)
    values: dict[str, Any] = {}
    offset = 0
    for kind in ("number", "flag", "choice"):
        for param, value in zip(params[kind], slots[offset:offset + counts[kind]], strict=False):
            if value is None:
                continue
            if kind == "number" and isinstance(param.default, int):
                value = round(float(value))
            if value != param.default:
                values[param.name] = value
        offset += counts[kind]
    return values


@dataclass
class UnitPanel:
    """One unit's components, in the order `UI.fields` reads them (BASE, then the parameter slots)."""

    index: int
    tab: Any
    parts: dict[str, Any]
    slots: list[Any] = field(default_factory=list)
    detected: Any = None
    preview: Any = None

    def inputs(self) -> list[Any]:
        return [*(self.parts[name] for name in BASE), *self.slots]


def build_unit(gr: Any, index: int, widgets: Widgets, modules: list[str], models: list[str],
               counts: dict[str, int]) -> UnitPanel:
    """The tab of control unit `index` (0-based); shown when index < DEFAULT_UNITS."""
    with gr.Tab(f"Control unit {index + 1}", visible=index < DEFAULT_UNITS, id=f"unit{index}") as tab:
        parts: dict[str, Any] = {}
        with gr.Row():
            parts["enabled"] = gr.Checkbox(value=index == 0, label="Enabled", elem_id=f"unit{index}-enabled")
            parts["module"] = gr.Dropdown(modules, value="none", label="Detector", elem_id=f"unit{index}-module")
            parts["model"] = gr.Dropdown(models, value="Automatic", label="Model", elem_id=f"unit{index}-model")
        with gr.Row():
            parts["image"] = gr.Image(label="Control image", type="numpy", elem_id=f"unit{index}-image")
            detected = gr.Image(label="Detected map", type="numpy", interactive=False, elem_id=f"unit{index}-map")
            parts["region"] = gr.Image(label="Region mask (optional)", type="numpy")
        with gr.Row():
            parts["weight"] = widgets.slider(gr, "weight", "Weight", 0.05, ControlUnit)
            parts["start"] = widgets.slider(gr, "start", "Start", 0.01, ControlUnit)
            parts["end"] = widgets.slider(gr, "end", "End", 0.01, ControlUnit)
            parts["res"] = widgets.slider(gr, "res", "Processor resolution", 8, ControlUnit)
        with gr.Row():
            parts["mode"] = widgets.choice(gr, "Radio", "mode", "Control mode", ControlUnit)
            parts["resize"] = widgets.choice(gr, "Radio", "resize_mode", "Resize mode", ControlUnit)
            parts["perfect"] = gr.Checkbox(value=bool(widgets.field("pixel_perfect", ControlUnit).default),
                                           label="Pixel Perfect")
        slots = []
        with gr.Row(elem_id=f"unit{index}-params"):
            slots += [gr.Slider(visible=False, elem_id=f"unit{index}-number{i}") for i in range(counts["number"])]
            slots += [gr.Checkbox(visible=False, elem_id=f"unit{index}-flag{i}") for i in range(counts["flag"])]
            slots += [gr.Dropdown([], visible=False, elem_id=f"unit{index}-choice{i}")
                      for i in range(counts["choice"])]
        preview = gr.Button("Preview detected map", elem_id=f"unit{index}-preview")
    # `input`, not `change`: a module set by code (pasted parameters, a sent pose) brings its own slot values
    parts["module"].input(lambda module: slot_updates(module, counts), parts["module"], slots)
    return UnitPanel(index, tab, parts, slots, detected, preview)


def visible_units(count: float) -> list[dict[str, Any]]:
    """Tab updates showing the first `count` units (the unit count setting)."""
    import gradio as gr

    shown = max(1, min(MAX_UNITS, int(count)))
    return [gr.update(visible=index < shown) for index in range(MAX_UNITS)]

"""PNG info and "paste parameters": an image's A1111 infotext and kekong recipe, and an infotext
(from an image or pasted, A1111's ↙ button) put into the Generate tab's fields.

The infotext is read by the one core parser (kekong/provenance/infotext_request.py), which also
finds the named models in the models folder; this module only maps request fields onto widgets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kekong.errors import KekongError
from kekong.ui import units as unit_panels

# request field → the Generate tab's widget (by its key in UI.named)
FIELD_WIDGETS = {"prompt": "prompt", "negative_prompt": "negative", "sampler": "sampler", "steps": "steps",
                 "cfg_scale": "cfg", "seed": "seed", "width": "width", "height": "height", "scheduler": "scheduler",
                 "enable_hr": "enable_hr", "hr_scale": "hr_scale", "hr_upscaler": "hr_upscaler",
                 "hr_second_pass_steps": "hr_steps", "refiner_switch_at": "switch_at", "fast": "fast",
                 "fast_parts": "fast_parts", "fast_interval": "fast_interval"}
MODEL_WIDGETS = {"model": "checkpoint", "vae": "vae", "refiner": "refiner"}  # named by title in their dropdowns
UNIT_FIELDS = {"weight": "weight", "start": "start", "end": "end", "mode": "mode", "resize_mode": "resize",
               "res": "res", "pixel_perfect": "perfect", "model": "model"}
UNIT_TARGETS = ("enabled", "module", *UNIT_FIELDS.values())


def read_info(path: str | Path) -> tuple[str, str, str]:
    """(A1111 parameters, kekong recipe as indented JSON, provenance in words) of an image file."""
    from kekong.provenance.verify import describe, read_metadata, verify

    path = Path(path)
    metadata = read_metadata(path.read_bytes())
    recipe = metadata.get("recipe")
    verdict = verify(path)
    words = describe(verdict).replace(str(path), path.name)
    return (metadata.get("parameters") or "", json.dumps(recipe, indent=1) if recipe else "", words)


def _choices(component: Any) -> list[Any]:
    return [c[1] if isinstance(c, tuple) else c for c in getattr(component, "choices", None) or []]


def _titled(name: str | None, component: Any) -> str | None:
    """A model name as its dropdown's title (`name [hash]`), or None when the dropdown lacks it."""
    if name is None:
        return None
    for title in _choices(component):
        if title == name or str(title).rsplit(" [", 1)[0] == name:
            return title
    return None


def checked(component: Any, value: Any, notes: list[str]) -> Any:
    """The widget's update; a choice it does not offer is named and skipped, a number outside its
    range (a server's narrower limit) is clipped and named."""
    import gradio as gr

    label = getattr(component, "label", None) or "a field"
    choices = _choices(component)
    if choices and isinstance(value, list):  # a multiple choice (fast mode's parts): every one offered
        missing = [v for v in value if v not in choices]
        if missing:
            notes.append(f"{label}: {', '.join(map(repr, missing))} not offered here")
            return gr.skip()
        return gr.update(value=value)
    if choices and value not in choices:
        notes.append(f"{label}: {value!r} is not offered here")
        return gr.skip()
    low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low is not None and high is not None:
        clipped = min(max(value, low), high)
        if clipped != value:
            notes.append(f"{label}: {value} is outside this server's {low}–{high}; set to {clipped}")
            value = clipped
    return gr.update(value=value)


class Paster:
    """Turns an infotext into updates of the Generate tab's widgets (`outputs()` order); what it
    cannot set (a model not here, a value the widget does not offer, a control image) is named."""

    def __init__(self, named: dict[str, Any], panels: list[unit_panels.UnitPanel], counts: dict[str, int]) -> None:
        self.named = named
        self.panels = panels
        self.counts = counts
        self.keys = [*FIELD_WIDGETS.values(), "strength", "hr_strength", *MODEL_WIDGETS.values()]

    def outputs(self) -> list[Any]:
        unit_parts = [c for p in self.panels for c in (*(p.parts[k] for k in UNIT_TARGETS), *p.slots)]
        return [*(self.named[key] for key in self.keys), *unit_parts]

    def updates(self, text: str) -> tuple[list[Any], list[str]]:
        """(one update per output, notes); fields the text does not carry are left as they are."""
        import gradio as gr

        from kekong.provenance.infotext_request import infotext_fields

        parsed = infotext_fields(text)  # ParameterError for a text with no parameters line
        fields, notes = dict(parsed.fields), [*parsed.unmatched, *parsed.warnings]
        values: dict[str, Any] = {}
        fields.setdefault("fast", False)  # written only when on: an image without it was made exactly
        for name, key in FIELD_WIDGETS.items():
            if name in fields:
                values[key] = fields[name]
        if "denoising_strength" in fields:
            values["hr_strength" if fields.get("enable_hr") else "strength"] = fields["denoising_strength"]
        for name, key in MODEL_WIDGETS.items():
            if fields.get(name):
                title = _titled(fields[name], self.named[key])
                if title is None:
                    notes.append(f"{name} {fields[name]} is not offered here")
                else:
                    values[key] = title
        updates = [gr.skip() if key not in values else gr.update(value=values[key]) if key in MODEL_WIDGETS.values()
                   else checked(self.named[key], values[key], notes) for key in self.keys]
        controls = fields.get("controls") or []
        for index, panel in enumerate(self.panels):
            updates += self._unit(panel, controls[index] if index < len(controls) else None, notes)
        if len(controls) > len(self.panels):
            notes.append(f"the infotext has {len(controls)} ControlNet units; this UI has {len(self.panels)}")
        if parsed.mode != "txt2img":
            notes.append(f"the image was made with {parsed.mode}: put its init image in the img2img section")
        notes += [f"ControlNet {i} ({unit['module']}): add its control image (an infotext carries none)"
                  for i, unit in enumerate(controls)]
        notes += [f"not used by kekong: {note}" for note in parsed.unused]
        return updates, notes

    def _unit(self, panel: unit_panels.UnitPanel, unit: dict[str, Any] | None, notes: list[str]) -> list[Any]:
        import gradio as gr

        skips = [gr.skip()] * (len(UNIT_TARGETS) - 1 + len(panel.slots))
        if unit is None:
            return [gr.update(value=False), *skips]  # the image was made without this unit
        module = self._module(panel, unit["module"], notes)
        updates = [gr.update(value=True), gr.skip() if module is None else gr.update(value=module)]
        for name, key in UNIT_FIELDS.items():
            if name == "model":
                title = _titled(unit.get("model"), panel.parts["model"]) if unit.get("model") else "Automatic"
                updates.append(gr.skip() if title is None else gr.update(value=title))
            elif name in unit:
                updates.append(checked(panel.parts[key], unit[name], notes))
            else:
                updates.append(gr.skip())
        if module is None:
            return [*updates, *[gr.skip()] * len(panel.slots)]
        return [*updates, *unit_panels.slot_updates(module, self.counts, unit.get("params") or {})]

    @staticmethod
    def _module(panel: unit_panels.UnitPanel, module: str, notes: list[str]) -> str | None:
        """The unit dropdown's name for an infotext's module (sd-webui-controlnet aliases included)."""
        from kekong.detect.registry import get

        choices = _choices(panel.parts["module"])
        if module in choices:
            return module
        try:
            name = get(module).name
        except KekongError as error:
            notes.append(f"ControlNet {panel.index}: {error}")
            return None
        return name if name in choices else None


def paste(paster: Paster, text: str) -> list[Any]:
    """The Gradio handler: the updates, then the notes line (a gr.Error for a text with no parameters)."""
    import gradio as gr

    if not (text or "").strip():
        raise gr.Error("paste an A1111 infotext (the prompt, then a `Steps: …, Sampler: …` line) first")
    try:
        updates, notes = paster.updates(text)
    except KekongError as error:
        raise gr.Error(str(error)) from None
    return [*updates, "\n".join(f"- {note}" for note in notes) or "all parameters applied"]

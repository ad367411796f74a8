"""UI widgets made from the request's declaration (kekong/declaration.py), narrowed by the
server's limits: a slider's range and default and a choice list are never typed here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kekong.declaration import FieldSpec, spec
from kekong.request import GenerationRequest

# request field → the server limit (an attribute of server.config.Limits) that narrows it
NARROWED_BY = {"steps": "max_steps", "hr_second_pass_steps": "max_steps", "width": "max_side", "height": "max_side",
               "batch_size": "max_batch", "batch_count": "max_batch", "hr_resize_x": "max_side",
               "hr_resize_y": "max_side"}


def field_spec(name: str, model: type[BaseModel] = GenerationRequest, limits: Any = None) -> FieldSpec:
    """The declared field, with the server's limit applied when one narrows it (Limits.spec where
    the server's Limits has it; NARROWED_BY otherwise, the same table)."""
    if limits is not None and hasattr(limits, "spec"):
        return limits.spec(name, model)
    declared = spec(name, model)
    if limits is None or model is not GenerationRequest or name not in NARROWED_BY:
        return declared
    return declared.narrowed(getattr(limits, NARROWED_BY[name], None))


class Widgets:
    """Builds sliders and choice lists, and remembers which field each came from (for the tests
    that walk every field and compare the UI with the declaration)."""

    def __init__(self, limits: Any = None) -> None:
        self.limits = limits
        self.made: list[tuple[str, type[BaseModel], Any]] = []  # (field, model, component)

    def field(self, name: str, model: type[BaseModel] = GenerationRequest) -> FieldSpec:
        return field_spec(name, model, self.limits)

    def slider(self, gr: Any, name: str, label: str, step: float, model: type[BaseModel] = GenerationRequest,
               value: Any = None, **options: Any) -> Any:
        field = field_spec(name, model, self.limits)
        default = field.default if value is None else value
        component = gr.Slider(field.ge, field.le, value=default, step=step, label=label, **options)
        self.made.append((name, model, component))
        return component

    def choice(self, gr: Any, kind: str, name: str, label: str, model: type[BaseModel] = GenerationRequest,
               **options: Any) -> Any:
        """A Dropdown or Radio (`kind`) over the field's declared choices, on its default."""
        field = field_spec(name, model, self.limits)
        component = getattr(gr, kind)(list(field.choices or ()), value=field.default, label=label, **options)
        self.made.append((name, model, component))
        return component


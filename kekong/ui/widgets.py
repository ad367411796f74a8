"""UI widgets made from the request's declaration (kekong/declaration.py), narrowed by the
server's limits: a slider's range and default and a choice list are never typed here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kekong.declaration import FieldSpec, spec
from kekong.request import GenerationRequest


def field_spec(name: str, model: type[BaseModel] = GenerationRequest, limits: Any = None) -> FieldSpec:
    """The declared field, narrowed by the server's limits (`Limits.spec`) when the UI has them."""
    return limits.spec(name, model) if limits is not None else spec(name, model)


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
        """A Dropdown, Radio or CheckboxGroup (`kind`) over the field's declared choices, on its default."""
        field = field_spec(name, model, self.limits)
        default = [getattr(v, "value", v) for v in field.default] if isinstance(field.default, list) else field.default
        component = getattr(gr, kind)(list(field.choices or ()), value=default, label=label, **options)
        self.made.append((name, model, component))
        return component


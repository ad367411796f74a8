"""Reading the request's declaration: a field's default, bounds, choices and help.

The fields of `GenerationRequest` and `ControlUnit` (kekong/request.py) are the one place where
a bound or a choice list is written; the CLI options, the UI widgets, the A1111 models and the
server's limits read them through `spec()`, so none of them retypes a number.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import annotated_types
from pydantic import BaseModel

from kekong.request import GenerationRequest


@dataclass(frozen=True)
class FieldSpec:
    """What a field declares: default, inclusive bounds (None = unbounded), choices, help."""

    name: str
    default: Any
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""

    def narrowed(self, le: float | None) -> FieldSpec:
        """The same field with a lower upper bound (a server's limit); it can never widen it. A
        default above the new bound comes down to it."""
        if le is None or (self.le is not None and le >= self.le):
            return self
        default = self.default
        if isinstance(default, (int, float)) and not isinstance(default, bool) and default > le:
            default = type(default)(le)
        return replace(self, le=le, default=default)

    def bounds_text(self) -> str:
        """`1–150`, `≥ 0`, `one of: …` or empty: for help texts."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.ge is not None and self.le is not None:
            return f"{_number(self.ge)}–{_number(self.le)}"
        if self.ge is not None:
            return f"≥ {_number(self.ge)}"
        return f"≤ {_number(self.le)}" if self.le is not None else ""


def spec(name: str, model: type[BaseModel] = GenerationRequest) -> FieldSpec:
    """The declaration of `model.name` (GenerationRequest by default; ControlUnit for a unit's fields)."""
    info = model.model_fields[name]
    ge = le = None
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            ge = item.ge
        elif isinstance(item, annotated_types.Gt):
            ge = item.gt
        elif isinstance(item, annotated_types.Le):
            le = item.le
        elif isinstance(item, annotated_types.Lt):
            le = item.lt
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    choices = extra.get("choices") or _enum_values(info.annotation)
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if isinstance(default, Enum):
        default = default.value
    return FieldSpec(name, default, ge, le, tuple(choices) if choices else None, info.description or "")


def specs(model: type[BaseModel] = GenerationRequest) -> dict[str, FieldSpec]:
    return {name: spec(name, model) for name in model.model_fields}


def _enum_values(annotation: Any) -> tuple[str, ...] | None:
    """The values of an Enum annotation (also inside `X | None`)."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) \
        or typing.get_origin(annotation) is typing.Union else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return tuple(str(member.value) for member in candidate)
    return None


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

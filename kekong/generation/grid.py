"""A1111's X/Y/Z plot: one request, varied along up to three axes — the grid of images that fixes
the control and swaps the keywords (`Prompt S/R`), seeds, CFG, steps, samplers or a ControlNet
unit's weight, window, mode, detector or model.

Axis values are written as A1111 writes them: a comma list (CSV quoting allowed), and for numbers
ranges — `1-5`, `1-10 (+2)`, `10-1 (-3)`, `0.5-1.5 [5]` (five values, ends included). Every cell
is a full request, validated before the first one runs. Cells share one seed unless the seed is an
axis (a seed of -1 is drawn once for the whole grid, as A1111 does).
"""

from __future__ import annotations

import copy
import csv
import io
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kekong.errors import ParameterError
from kekong.request import GenerationRequest, build_request

MAX_CELLS = 500  # cells per grid: each is a whole generation

_INT_RANGE = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*")
_INT_COUNT = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)\s*\[(\d+)\s*\]\s*")
_FLOAT = r"[+-]?\s*\d+(?:\.\d*)?"
_FLOAT_RANGE = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*")
_FLOAT_COUNT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})\s*\[(\d+)\s*\]\s*")


@dataclass(frozen=True)
class AxisType:
    """What an axis varies: a request field (or a unit's field, `unit.<name>`), and its value type."""

    name: str  # A1111's label
    field: str
    kind: type  # int, float or str


NOTHING = AxisType("Nothing", "", str)  # A1111's placeholder: one value that changes nothing
_TYPES = [
    NOTHING, AxisType("Prompt S/R", "prompt", str), AxisType("Seed", "seed", int), AxisType("Steps", "steps", int),
    AxisType("CFG Scale", "cfg_scale", float), AxisType("Sampler", "sampler", str),
    AxisType("Schedule type", "scheduler", str), AxisType("Denoising", "denoising_strength", float),
    AxisType("Checkpoint name", "model", str), AxisType("VAE", "vae", str),
    AxisType("Var. seed", "subseed", int), AxisType("Var. strength", "subseed_strength", float),
    AxisType("Clip skip", "clip_skip", int), AxisType("Hires steps", "hr_second_pass_steps", int),
    AxisType("Hires sampler", "hr_sampler_name", str), AxisType("Hires upscaler", "hr_upscaler", str),
    AxisType("Refiner switch at", "refiner_switch_at", float), AxisType("RNG source", "rng", str),
    AxisType("[ControlNet] Weight", "unit.weight", float),
    AxisType("[ControlNet] Guidance Start", "unit.start", float),
    AxisType("[ControlNet] Guidance End", "unit.end", float),
    AxisType("[ControlNet] Control Mode", "unit.mode", str),
    AxisType("[ControlNet] Resize Mode", "unit.resize_mode", str),
    AxisType("[ControlNet] Preprocessor", "unit.module", str),
    AxisType("[ControlNet] Model", "unit.model", str),
    AxisType("[ControlNet] Pre Resolution", "unit.res", int),
]
AXIS_TYPES = {t.name.lower(): t for t in _TYPES}
_UNIT_AXIS = re.compile(r"\[controlnet(?: (\d+))?\] (.+)")  # `[ControlNet 1] Weight`: unit 1 (default 0)


@dataclass(frozen=True)
class Axis:
    type: AxisType
    values: tuple[Any, ...]
    unit: int = 0  # for a ControlNet axis: the unit it changes

    @property
    def label(self) -> str:
        return self.type.name if not self.type.field.startswith("unit.") or self.unit == 0 else \
            self.type.name.replace("[ControlNet]", f"[ControlNet {self.unit}]")


def parse_axis(text: str) -> Axis:
    """`AXIS:V1,V2,…` (A1111's axis label, then its values) → an Axis."""
    name, sep, values = text.partition(":")
    key = name.strip().lower()
    unit = 0
    match = _UNIT_AXIS.fullmatch(key)
    if match:
        unit, key = int(match.group(1) or 0), f"[controlnet] {match.group(2)}"
    if key == "nothing":
        return Axis(NOTHING, ("",))
    if not sep or key not in AXIS_TYPES:
        known = ", ".join(t.name for t in _TYPES)
        raise ParameterError(f"axis {text!r}: expected AXIS:VALUES with AXIS one of: {known}")
    axis_type = AXIS_TYPES[key]
    parsed = tuple(expand(values, axis_type.kind, axis_type.name))
    if not parsed:
        raise ParameterError(f"axis {axis_type.name}: no values")
    if axis_type.name == "Prompt S/R" and len(parsed) < 2:
        raise ParameterError("axis Prompt S/R: the first value is searched for, the others replace it: give 2+")
    return Axis(axis_type, parsed, unit)


def axis_text(axis: Axis) -> str:
    """The axis written back as `AXIS:VALUES` (CSV-quoted), so parse_axis gives it again."""
    if axis.type is NOTHING:
        return NOTHING.name
    stream = io.StringIO()
    csv.writer(stream).writerow([f"{v:g}" if isinstance(v, float) else str(v) for v in axis.values])
    return f"{axis.label}:{stream.getvalue().strip()}"


def fix_seeds(fields: dict[str, Any], axes: list[Axis]) -> tuple[dict[str, Any], list[Axis]]:
    """A1111's fixed seeds (the X/Y/Z plot's default, unless "Keep -1 for seeds"): a seed of -1 is
    drawn once for every cell, and each -1 on a Seed or Var. seed axis is drawn once for its row
    or column."""
    fields = copy.deepcopy(fields)
    if fields.get("seed", -1) == -1:
        fields["seed"] = secrets.randbelow(2**32)
    drawn = [Axis(a.type, tuple(secrets.randbelow(2**32) if v == -1 else v for v in a.values), a.unit)
             if a.type.name in ("Seed", "Var. seed") else a for a in axes]
    return fields, drawn


def expand(text: str, kind: type, name: str = "axis") -> list[Any]:
    """A1111's value list: CSV items, number ranges expanded."""
    items = [item.strip() for row in csv.reader([text], skipinitialspace=True) for item in row if item.strip()]
    if kind is str:
        return items
    values: list[Any] = []
    for item in items:
        values.extend(_number_range(item, kind, name))
    if len(values) > MAX_CELLS:
        raise ParameterError(f"axis {name}: {len(values)} values; a grid has at most {MAX_CELLS} cells")
    return values


def _number_range(item: str, kind: type, name: str) -> list[Any]:
    plain = re.sub(r"\s+", "", item)
    if kind is int:
        if match := _INT_COUNT.fullmatch(item):
            start, end, count = int(plain_num(match.group(1))), int(plain_num(match.group(2))), int(match.group(3))
            return [int(v) for v in np.linspace(start, end, _count(count, name)).tolist()]
        if match := _INT_RANGE.fullmatch(item):
            start, end = int(plain_num(match.group(1))), int(plain_num(match.group(2)))
            step = int(match.group(3)) if match.group(3) else 1
            _check_steps((end - start) / step if step else -1, name)
            return list(range(start, end + 1, step))  # A1111 adds 1 whatever the step's sign
    else:
        if match := _FLOAT_COUNT.fullmatch(item):
            start, end, count = float(plain_num(match.group(1))), float(plain_num(match.group(2))), int(match.group(3))
            return [round(v, 6) for v in np.linspace(start, end, _count(count, name)).tolist()]
        if match := _FLOAT_RANGE.fullmatch(item):
            start, end = float(plain_num(match.group(1))), float(plain_num(match.group(2)))
            step = float(match.group(3)) if match.group(3) else 1.0
            _check_steps((end - start) / step if step else -1, name)
            return [round(v, 6) for v in np.arange(start, end + step / 2, step).tolist()]
    try:
        return [kind(float(plain)) if kind is int else kind(plain)]
    except ValueError:
        raise ParameterError(f"axis {name}: {item!r} is not a number or a range such as 1-5 or 0.5-1.5 [5]") from None


def plain_num(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _count(count: int, name: str) -> int:
    if not 1 <= count <= MAX_CELLS:
        raise ParameterError(f"axis {name}: [{count}] values; 1 to {MAX_CELLS}")
    return count


def _check_steps(steps: float, name: str) -> None:
    if steps < 0 or steps > MAX_CELLS:
        raise ParameterError(f"axis {name}: the range runs the wrong way for its step or has over {MAX_CELLS} values")


@dataclass
class GridSpec:
    """A grid to run as one job (the server's X/Y/Z plot): its axes as `AXIS:VALUES` texts (seeds
    already drawn when fixed), and which images A1111 answers with besides the grid."""

    axes: list[str]
    fixed_seeds: bool = True
    lone_images: bool = False  # A1111's "Include Sub Images": the cells follow the grid
    sub_grids: bool = False  # A1111's "Include Sub Grids": one grid per Z value after the main one
    warnings: list[str] = field(default_factory=list)

    def parsed(self) -> list[Axis]:
        return [parse_axis(text) for text in self.axes]

    def as_json(self) -> dict[str, Any]:
        return {"axes": self.axes, "fixed_seeds": self.fixed_seeds, "lone_images": self.lone_images,
                "sub_grids": self.sub_grids}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GridSpec:
        return cls(list(data["axes"]), bool(data["fixed_seeds"]), bool(data["lone_images"]), bool(data["sub_grids"]))


@dataclass
class Cell:
    position: tuple[int, int, int]  # (x, y, z) indices
    values: tuple[Any, ...]  # this cell's value on each axis
    request: GenerationRequest


def plan(fields: dict[str, Any], axes: list[Axis], fixed_seeds: bool = True) -> list[Cell]:
    """Every cell's request, built and validated before any runs (z slowest, then y, then x).
    `fixed_seeds` (A1111's default): see fix_seeds; False keeps -1, each cell draws its own."""
    if not 1 <= len(axes) <= 3:
        raise ParameterError("a grid has one to three axes (x, y, z)")
    shape = [len(a.values) for a in axes] + [1] * (3 - len(axes))
    if shape[0] * shape[1] * shape[2] > MAX_CELLS:
        raise ParameterError(f"{' × '.join(map(str, shape[:len(axes)]))} cells; a grid has at most {MAX_CELLS}")
    fields, axes = fix_seeds(fields, axes) if fixed_seeds else (copy.deepcopy(fields), axes)
    cells = []
    for z in range(shape[2]):
        for y in range(shape[1]):
            for x in range(shape[0]):
                position = (x, y, z)
                chosen = tuple(axis.values[i] for axis, i in zip(axes, position, strict=False))
                cell_fields = copy.deepcopy(fields)
                for axis, value in zip(axes, chosen, strict=True):
                    _apply(cell_fields, axis, value)
                try:
                    request = build_request(**cell_fields)
                except ParameterError as error:
                    where = ", ".join(f"{a.label}={v}" for a, v in zip(axes, chosen, strict=True))
                    raise ParameterError(f"grid cell {where}: {error}") from None
                cells.append(Cell(position, chosen, request))
    return cells


def _apply(fields: dict[str, Any], axis: Axis, value: Any) -> None:
    field = axis.type.field
    if axis.type is NOTHING:
        return
    if axis.type.name == "Prompt S/R":
        search = axis.values[0]
        prompt, negative = fields.get("prompt", ""), fields.get("negative_prompt", "")
        if search not in prompt and search not in negative:
            raise ParameterError(f"axis Prompt S/R: {search!r} is not in the prompt or the negative prompt")
        fields["prompt"] = prompt.replace(search, value)
        fields["negative_prompt"] = negative.replace(search, value)
    elif field.startswith("unit."):
        units = fields.get("controls") or []
        if axis.unit >= len(units):
            raise ParameterError(f"axis {axis.label}: the request has {len(units)} control unit(s)")
        units[axis.unit][field.removeprefix("unit.")] = value
    else:
        fields[field] = value


def run(cells: list[Cell], generate_one: Callable[[GenerationRequest], Any],
        on_cell: Callable[[int, Cell, Any], None] | None = None) -> list[Any]:
    """Each cell's first image, generated in order; `on_cell(index, cell, generated)` after each."""
    results = []
    for index, cell in enumerate(cells):
        [generated, *_] = generate_one(cell.request.model_copy(update={"batch_size": 1, "batch_count": 1}))
        results.append(generated)
        if on_cell is not None:
            on_cell(index, cell, generated)
    return results

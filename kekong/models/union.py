"""ControlNet Union (xinsir's controlnet-union-sdxl-1.0 and its ProMax): one model, a control-type
switch. Each unit tells the model which kind of map it gives; kekong derives it from the unit's
detector, or takes it from `union_type` (sd-webui-controlnet's `union_control_type`) when the
unit hands over a ready map (module `none`)."""

from __future__ import annotations

from typing import Any

import torch

from kekong.choices import UNION_TYPES, parse_union_type
from kekong.errors import ParameterError

TYPES = UNION_TYPES
# detector name prefixes → control type
_MODULES = (("openpose", "OpenPose"), ("depth", "Depth"), ("softedge", "Soft Edge"), ("scribble", "Soft Edge"),
            ("threshold", "Soft Edge"), ("canny", "Canny"), ("lineart", "Canny"), ("mlsd", "Canny"),
            ("invert", "Canny"), ("normal", "Normal Map"), ("seg", "Segment"), ("tile", "Tile"), ("blur", "Tile"),
            ("inpaint", "Inpaint"))


def is_union(model: Any) -> bool:
    return type(model).__name__ == "ControlNetUnionModel"


parse = parse_union_type  # declared in the leaf kekong.choices, beside the other name tables


def type_index(model: Any, module: str, union_type: str | None, unit_index: int) -> int:
    """The control-type slot a unit uses in a Union model."""
    name = union_type or next((kind for prefix, kind in _MODULES if module.startswith(prefix)), None)
    if name is None:
        raise ParameterError(f"control unit {unit_index}: a ControlNet Union model needs to know what the map is; "
                             f"set union_type (one of: {', '.join(TYPES)}) for module {module!r}")
    index = TYPES.index(name)
    slots = model.config.num_control_type
    if index >= slots:
        raise ParameterError(f"control unit {unit_index}: this Union model has {slots} control types; "
                             f"{name} needs the 8-type ProMax model")
    return index


def one_hot(model: Any, index: int, rows: int) -> torch.Tensor:
    control_type = torch.zeros(rows, model.config.num_control_type)
    control_type[:, index] = 1
    return control_type

"""ControlNet Union (xinsir's controlnet-union-sdxl-1.0 and its ProMax): one model, a control-type
switch. Each unit tells the model which kind of map it gives; kekong derives it from the unit's
detector, or takes it from `union_type` (sd-webui-controlnet's `union_control_type`) when the
unit hands over a ready map (module `none`)."""

from __future__ import annotations

from typing import Any

import torch

from kekong.errors import ParameterError

# The model's control-type slots (ProMax has 8; the first release 6, without Tile and Inpaint).
TYPES = ("OpenPose", "Depth", "Soft Edge", "Canny", "Normal Map", "Segment", "Tile", "Inpaint")
_ALIASES = {"openpose": "OpenPose", "depth": "Depth", "soft edge": "Soft Edge", "softedge": "Soft Edge",
            "scribble": "Soft Edge", "hed": "Soft Edge", "canny": "Canny", "lineart": "Canny", "mlsd": "Canny",
            "canny/lineart/mlsd": "Canny", "normal": "Normal Map", "normal map": "Normal Map",
            "segment": "Segment", "segmentation": "Segment", "tile": "Tile", "inpaint": "Inpaint", "repaint": "Inpaint"}
# detector name prefixes → control type
_MODULES = (("openpose", "OpenPose"), ("depth", "Depth"), ("softedge", "Soft Edge"), ("scribble", "Soft Edge"),
            ("threshold", "Soft Edge"), ("canny", "Canny"), ("lineart", "Canny"), ("mlsd", "Canny"),
            ("invert", "Canny"), ("normal", "Normal Map"), ("seg", "Segment"), ("tile", "Tile"), ("blur", "Tile"),
            ("inpaint", "Inpaint"))


def is_union(model: Any) -> bool:
    return type(model).__name__ == "ControlNetUnionModel"


def parse(value: str | None) -> str | None:
    """A union type by name (any case; sd-webui-controlnet's names and short ones); None = from the module."""
    if value is None or str(value).strip().lower() in ("", "unknown", "auto"):
        return None
    key = str(value).strip().lower()
    for name in TYPES:
        if key == name.lower():
            return name
    if key in _ALIASES:
        return _ALIASES[key]
    raise ParameterError(f"unknown union control type {value!r}; expected one of: {', '.join(TYPES)}")


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

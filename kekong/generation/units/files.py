"""The model file a ControlNet-style unit names — or the base model's default for its detector — loaded
and checked against the base: a ControlNet, a ControlNet Union, a Control-LoRA (built from the base's
own UNet) or a T2I-Adapter. Which kind the unit is follows from what was loaded."""

from __future__ import annotations

from typing import Any

from kekong.errors import ParameterError
from kekong.request import ControlUnit


def default_controlnet(base: Any, module: str) -> str:
    """The base model's ControlNet for a detector's kind of map."""
    if module in base.controlnets:
        return base.controlnets[module]
    if module == "none":
        raise ParameterError("a unit with module `none` needs model=… (which ControlNet reads this map?)")
    from kekong.detect.registry import get

    feeds = get(module).feeds
    if base.family == "sd15":
        names = [n for n in feeds if "sd15" in n or "sd14" in n]
        if names:
            owner = "TencentARC" if names[0].startswith("t2iadapter") else "lllyasviel"
            return f"{owner}/{names[0]}" if "/" not in names[0] else names[0]
    if base.family == "sdxl":
        names = [n for n in feeds if "sdxl" in n]
        if names:
            return names[0]
    raise ParameterError(f"no default ControlNet for {module} on {base.name}; name one with model=…")


def load_model(base: Any, unit: ControlUnit) -> tuple[Any, Any]:
    """(model, ModelRef) for the unit, refused when it was made for another base family."""
    from kekong.models import control_lora
    from kekong.models.load import check_compatible, load_controlnet
    from kekong.models.refs import resolve

    reference = unit.model or default_controlnet(base, unit.module)
    ref = resolve(reference, "controlnet")
    if control_lora.is_control_lora(ref.path):  # built from this base model's own UNet
        model = control_lora.load(base, ref.path)
    else:
        model, ref = load_controlnet(reference)
    check_compatible(base, model, ref.name)
    return model, ref


def refuse_union_type(unit: ControlUnit, index: int, name: str) -> None:
    """`union_type` on a unit whose model is not a ControlNet Union."""
    if unit.union_type is not None:
        raise ParameterError(f"control unit {index}: union_type (union_control_type) applies to ControlNet Union "
                             f"models; {name} is a plain ControlNet")

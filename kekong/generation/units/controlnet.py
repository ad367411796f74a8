"""ControlNet units, applied the way sd-webui-controlnet defines them: residuals added after the
UNet's down and mid blocks.

One class serves plain ControlNets and Control-LoRAs: a Control-LoRA is a ControlNet built from the
base's own UNet plus low-rank deltas (generation/units/files.py loads it); from then on it is a
ControlNet. A ControlNet Union (`UnionUnit`) also loads differently — the control-type slot of the
unit's map — and tells the model that slot when it runs; it shares the evaluation below, so units of
both sum in one pass, in request order.

Beyond diffusers' pipeline (the loop's docstring says why): a unit outside its window is not
evaluated; a unit controlling only the conditional half of the CFG batch ("ControlNet is more
important") is evaluated on that half only; units sharing a model and an image share one
evaluation; region masks; per-unit control modes and soft injection scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from kekong.generation.units.base import Contribution, Loaded, Step, Unit
from kekong.generation.units.files import refuse_union_type
from kekong.models.patch import call_lock
from kekong.request import ControlUnit


@dataclass(eq=False)
class ControlNetUnit(Unit):
    kind = "controlnet"
    reusable = True  # fast mode's control_reuse may keep its residuals between full steps

    @classmethod
    def claims(cls, unit: ControlUnit, loaded: Loaded) -> bool:
        return True  # any model file no other kind claimed (the registry asks this kind last)

    @classmethod
    def prepare(cls, base: Any, unit: ControlUnit, index: int, loaded: Loaded) -> Unit:
        from kekong.models.load import controlnet_label

        model, ref = loaded()
        refuse_union_type(unit, index, ref.name)
        return cls(unit, index, model, controlnet_label(ref), ref.name, "")

    @classmethod
    def contribute(cls, units: Sequence[Unit], step: Step) -> Contribution | None:
        down, mid = control_residuals(units, step.index, step.total, step.latent_in, step.t, step.embeds,
                                      step.added, step.uncond_rows, step.fast, step.shallow)
        return None if down is None else Contribution(down=down, mid=mid)

    def share_key(self) -> tuple:
        """Units with equal keys share one evaluation."""
        return id(self.controlnet), self.image_key, None

    def model_inputs(self, image: torch.Tensor, rows: int) -> tuple[Any, dict]:
        """The control image as the model takes it, and any further arguments."""
        return image, {}


@dataclass(eq=False)
class UnionUnit(ControlNetUnit):
    """ControlNet Union (xinsir's controlnet-union-sdxl-1.0 and ProMax): one model, a control-type switch."""

    union_index: int | None = None  # the control-type slot of this unit's map
    kind = "union"

    @classmethod
    def claims(cls, unit: ControlUnit, loaded: Loaded) -> bool:
        from kekong.models.union import is_union

        return is_union(loaded()[0])

    @classmethod
    def prepare(cls, base: Any, unit: ControlUnit, index: int, loaded: Loaded) -> Unit:
        from kekong.models.load import controlnet_label
        from kekong.models.union import type_index

        model, ref = loaded()
        item = cls(unit, index, model, controlnet_label(ref), ref.name, "")
        item.union_index = type_index(model, unit.module, unit.union_type, index)
        return item

    def share_key(self) -> tuple:
        return id(self.controlnet), self.image_key, self.union_index

    def model_inputs(self, image: torch.Tensor, rows: int) -> tuple[Any, dict]:
        from kekong.models.union import one_hot

        index = self.union_index
        return [image], {"control_type": one_hot(self.controlnet, index, rows), "control_type_idx": [index]}


def _conditional(tensor: Any, uncond_rows: int) -> Any:
    """The conditional rows of a CFG-batched tensor (or dict of tensors)."""
    if tensor is None or not uncond_rows:
        return tensor
    if isinstance(tensor, dict):
        return {k: _conditional(v, uncond_rows) for k, v in tensor.items()}
    return tensor[uncond_rows:]


@torch.no_grad()
def control_residuals(
    units: Sequence[Any], step: int, total: int, latent_in: torch.Tensor, t: torch.Tensor,
    embeds: torch.Tensor, added: dict | None, uncond_rows: int, fast: Any = None, shallow: bool = False,
) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
    """Sum of the active units' residuals for this step, or (None, None) when none is active.
    Rows [0, uncond_rows) of the batch are the unconditional ones (none without CFG). In fast mode
    (`fast`, a FastPlan) a `shallow` step runs each ControlNet's shallow branch only."""
    active = [u for u in units if u.active(step, total)]
    if not active:
        return None, None
    groups: dict[tuple, list[Any]] = {}
    for unit in active:
        groups.setdefault(unit.share_key(), []).append(unit)
    total_down: list[torch.Tensor] | None = None
    total_mid: torch.Tensor | None = None
    for members in groups.values():
        cond_only = uncond_rows > 0 and all(u.cfg_injection for u in members)
        x, e, a = (latent_in, embeds, added) if not cond_only else (
            _conditional(latent_in, uncond_rows), _conditional(embeds, uncond_rows), _conditional(added, uncond_rows))
        image, kwargs = members[0].model_inputs(members[0].cond.expand(x.shape[0], -1, -1, -1), x.shape[0])
        if a is not None:
            kwargs["added_cond_kwargs"] = a
        controlnet = members[0].controlnet
        # Held for the call: fast mode patches the (shared) model for it, and no other request may see that.
        with call_lock(controlnet), fast.control_call(controlnet, shallow, x.shape[0]) if fast is not None \
                else nullcontext():
            down, mid = controlnet(x, t, encoder_hidden_states=e, controlnet_cond=image,
                                              conditioning_scale=1.0, guess_mode=False, return_dict=False, **kwargs)
        for unit in members:
            outputs = [*down, mid]
            scales = unit.scales(len(outputs))
            scaled = []
            for out, scale in zip(outputs, scales, strict=True):
                r = out if scale == 1.0 else out * scale  # weight 1: no extra pass over the residual
                if unit.region is not None:
                    r = r * F.interpolate(unit.region, size=r.shape[-2:], mode="area")
                if uncond_rows and not cond_only and unit.cfg_injection:
                    r = torch.cat([torch.zeros_like(r[:uncond_rows]), r[uncond_rows:]])
                if cond_only:
                    r = torch.cat([r.new_zeros((uncond_rows, *r.shape[1:])), r])
                scaled.append(r)
            if total_down is None:
                total_down, total_mid = scaled[:-1], scaled[-1]
            else:
                total_down = [a + b for a, b in zip(total_down, scaled[:-1], strict=True)]
                total_mid = total_mid + scaled[-1]
    return total_down, total_mid

"""T2I-Adapter units (diffusers format): the adapter's features are added inside the UNet's down
blocks, with the unit's weight, window, control mode and region. An adapter does not see the
timestep, so each runs once per generation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from kekong.generation.units.base import Contribution, Loaded, Step, Unit
from kekong.generation.units.files import refuse_union_type
from kekong.request import ControlUnit


@dataclass(eq=False)
class T2IAdapterUnit(Unit):
    adapter_features: list[torch.Tensor] | None = None  # the adapter's output, computed at its first active step
    kind = "t2i_adapter"

    @classmethod
    def claims(cls, unit: ControlUnit, loaded: Loaded) -> bool:
        from kekong.models.load import is_adapter

        return is_adapter(loaded()[0])

    @classmethod
    def prepare(cls, base: Any, unit: ControlUnit, index: int, loaded: Loaded) -> Unit:
        from kekong.models.load import controlnet_label

        model, ref = loaded()
        refuse_union_type(unit, index, ref.name)
        return cls(unit, index, model, controlnet_label(ref), ref.name, "")

    @classmethod
    def contribute(cls, units: Sequence[Unit], step: Step) -> Contribution | None:
        features = adapter_features(units, step.index, step.total, step.latent_in.shape[0], step.uncond_rows)
        return None if features is None else Contribution(features=features)


@torch.no_grad()
def adapter_features(units: Sequence[Any], step: int, total: int, rows: int,
                     uncond_rows: int) -> list[torch.Tensor] | None:
    """Sum of the active units' features for the UNet's down blocks (None when none is active)."""
    total_features: list[torch.Tensor] | None = None
    for unit in units:
        if not unit.active(step, total):
            continue
        if unit.adapter_features is None:
            cond = unit.cond if unit.controlnet.config["in_channels"] == 3 else unit.cond.mean(1, keepdim=True)
            unit.adapter_features = list(unit.controlnet(cond))
        scaled = []
        for feature, scale in zip(unit.adapter_features, unit.scales(len(unit.adapter_features)), strict=True):
            f = feature * scale
            if unit.region is not None:
                f = f * F.interpolate(unit.region, size=f.shape[-2:], mode="area")
            f = f.expand(rows, -1, -1, -1)
            if uncond_rows and unit.cfg_injection:
                f = torch.cat([torch.zeros_like(f[:uncond_rows]), f[uncond_rows:]])
            scaled.append(f)
        total_features = scaled if total_features is None else [a + b for a, b in zip(total_features, scaled,
                                                                                      strict=True)]
    return total_features

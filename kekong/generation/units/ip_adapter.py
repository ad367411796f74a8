"""IP-Adapter units: the unit's image, encoded by a CLIP vision encoder, joins the prompt through
decoupled cross-attention (kekong/models/ip_adapter.py loads the weights and installs the processors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kekong.errors import ParameterError
from kekong.generation.units.base import Contribution, Loaded, Step, Unit
from kekong.io import source_sha256
from kekong.request import ControlMode, ControlUnit, HrOption


@dataclass(eq=False)
class IPAdapterUnit(Unit):
    ip_embeds: tuple[torch.Tensor, torch.Tensor] | None = None  # (cond, uncond) image embeddings
    kind = "ip_adapter"
    model_role = "ipadapter"

    @classmethod
    def claims(cls, unit: ControlUnit, loaded: Loaded) -> bool:
        from kekong.models.ip_adapter import is_ip_module

        return is_ip_module(unit.module)

    @classmethod
    def prepare(cls, base: Any, unit: ControlUnit, index: int, loaded: Loaded) -> Unit:
        """Its weights, checked against the base (and what it cannot do, refused)."""
        from kekong.models import ip_adapter
        from kekong.models.load import controlnet_label
        from kekong.models.refs import resolve

        if unit.model is None:
            raise ParameterError(f"control unit {index}: an IP-Adapter unit needs model= (e.g. ip-adapter_sd15)")
        if unit.mode != ControlMode.BALANCED or unit.mask is not None or unit.hr_option != HrOption.BOTH:
            raise ParameterError(f"control unit {index}: IP-Adapter units take the Balanced control mode, no region "
                                 "mask and hr_option Both (they act through the prompt's cross-attention)")
        ref = resolve(unit.model, "ipadapter")
        adapter = ip_adapter.load(ref.path)
        ours = base.unet.config.cross_attention_dim
        if adapter.cross_attention_dim != ours:
            raise ParameterError(f"IP-Adapter {ref.name} is for text width {adapter.cross_attention_dim} but "
                                 f"{base.name} reads {ours}; pick the IP-Adapter made for this base model")
        return cls(unit, index, adapter, controlnet_label(ref), ref.name, "")

    def detect(self, image: np.ndarray, mask: np.ndarray | None, size_hw: tuple[int, int], reference: str) -> None:
        """No map: the image itself is encoded."""
        from kekong.models import ip_adapter

        encoder = ip_adapter.load_image_encoder(ip_adapter.find_image_encoder(self.controlnet))
        self.ip_embeds = ip_adapter.image_embeds(encoder, image, self.controlnet.plus)
        self.image_key = f"{source_sha256(reference)}:{self.unit.module}:{self.model_name}"

    @classmethod
    def applied(cls, units: Sequence[Unit], unet: Any) -> Any:
        from kekong.models import ip_adapter

        return ip_adapter.applied(unet, [u.controlnet for u in units])

    @classmethod
    def contribute(cls, units: Sequence[Unit], step: Step) -> Contribution | None:
        """Every adapter's image embeddings in the batch's row order ([uncond] + conditional rows); its
        scale for this step is its weight inside its window, else 0."""
        from kekong.models.ip_adapter import set_scales

        set_scales(step.unet, [u.unit.weight if u.active(step.index, step.total) else 0.0 for u in units])
        embeds = []
        for unit in units:
            cond, uncond = unit.ip_embeds
            rows = [cond] * (step.batch * step.parts)
            if step.uncond_rows:
                rows = [uncond] * step.batch + rows
            embeds.append(torch.cat(rows))
        return Contribution(image_embeds=embeds)

"""Control units, from request to tensors: detect (or take the map as is), fit to the
generation size, load and check the ControlNet, read the optional region mask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kekong.detect.resolution import fit_to_target, resize_map
from kekong.errors import ParameterError
from kekong.io import image_source, load_image, source_sha256
from kekong.request import ControlMode, ControlUnit


@dataclass(eq=False)
class PreparedUnit:
    unit: ControlUnit
    index: int
    controlnet: Any
    model_label: str  # `name [legacy hash]` as sd-webui-controlnet writes it
    model_name: str
    image_key: str  # sha256 of the control image + module + params: units sharing it share work
    cond: torch.Tensor | None = None  # (1, 3, H, W) in [0, 1] (inpaint: −1 where masked)
    region: torch.Tensor | None = None  # (1, 1, H, W) in [0, 1]
    detected: np.ndarray | None = None  # the map as generated against, for saving
    adapter_features: list[torch.Tensor] | None = None  # a T2I-Adapter's output: it does not see the timestep
    union_index: int | None = None  # ControlNet Union: the control-type slot of this unit's map
    ip_embeds: tuple[torch.Tensor, torch.Tensor] | None = None  # IP-Adapter: (cond, uncond) image embeddings

    @property
    def is_adapter(self) -> bool:
        from kekong.models.load import is_adapter

        return is_adapter(self.controlnet)

    @property
    def is_reference(self) -> bool:
        """Reference-only: no model; the UNet attends to the picture (generation/reference.py)."""
        return self.unit.module == "reference_only"

    @property
    def is_ip(self) -> bool:
        """An IP-Adapter: its image joins the prompt through decoupled cross-attention."""
        from kekong.models.ip_adapter import IPAdapter

        return isinstance(self.controlnet, IPAdapter)

    @property
    def cfg_injection(self) -> bool:
        """Control on the conditional half of the CFG batch only."""
        return self.unit.mode == ControlMode.CONTROL

    def scales(self, count: int) -> list[float]:
        """Per-residual weights: flat, or sd-webui-controlnet's soft injection for the non-balanced modes."""
        weight = self.unit.weight
        if self.unit.mode == ControlMode.BALANCED:
            return [weight] * count
        soft = [weight * 0.825 ** float(12 - i) for i in range(13)]
        return soft[:count] if count <= 13 else [weight] * (count - 13) + soft

    def active(self, step: int, total: int) -> bool:
        """diffusers' window rule, so skipping is bit-identical to its multiply-by-zero."""
        outside = step / total < self.unit.start or (step + 1) / total > self.unit.end
        return not outside and self.unit.weight > 0


def default_controlnet(base, module: str) -> str:
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


def load_units(base, units: list[ControlUnit]) -> list[PreparedUnit]:
    """Load every unit's ControlNet and check it fits the base — before any detection runs."""
    from kekong.models import control_lora
    from kekong.models.ip_adapter import is_ip_module
    from kekong.models.load import check_compatible, controlnet_label, load_controlnet
    from kekong.models.refs import resolve
    from kekong.models.union import is_union, type_index

    prepared = []
    for index, unit in enumerate(units):
        if is_ip_module(unit.module):
            prepared.append(load_ip_unit(base, unit, index))
            continue
        if unit.module == "reference_only":  # no model: sd-webui-controlnet writes "None"
            if unit.model is not None:
                raise ParameterError(f"control unit {index}: reference_only uses no model (model={unit.model!r})")
            prepared.append(PreparedUnit(unit, index, None, "None", "None", ""))
            continue
        reference = unit.model or default_controlnet(base, unit.module)
        ref = resolve(reference, "controlnet")
        if control_lora.is_control_lora(ref.path):  # built from this base model's own UNet
            controlnet = control_lora.load(base, ref.path)
        else:
            controlnet, ref = load_controlnet(reference)
        check_compatible(base, controlnet, ref.name)
        item = PreparedUnit(unit, index, controlnet, controlnet_label(ref), ref.name, "")
        if is_union(controlnet):
            item.union_index = type_index(controlnet, unit.module, unit.union_type, index)
        elif unit.union_type is not None:
            raise ParameterError(f"control unit {index}: union_type (union_control_type) applies to ControlNet Union "
                                 f"models; {ref.name} is a plain ControlNet")
        prepared.append(item)
    return prepared


def load_ip_unit(base, unit: ControlUnit, index: int) -> PreparedUnit:
    """An IP-Adapter unit: its weights, checked against the base (and what it cannot do, refused)."""
    from kekong.models import ip_adapter
    from kekong.models.load import controlnet_label
    from kekong.models.refs import resolve
    from kekong.request import ControlMode, HrOption

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
    return PreparedUnit(unit, index, adapter, controlnet_label(ref), ref.name, "")


def detect_units(prepared: list[PreparedUnit], size_hw: tuple[int, int], init_image: str | None,
                 crop: tuple[int, int, int, int] | None = None, inpaint_mask: np.ndarray | None = None) -> None:
    """Run each unit's detector, fit its map to the generation size and read its region mask.

    With an "only masked" inpaint crop, a control image the size of the init image is cropped
    the same way, so the structure lines up with the repainted region. `inpaint_only` units
    take the request's inpaint mask (white = repaint)."""
    from kekong.detect import run

    for item in prepared:
        unit = item.unit
        reference = unit.image or init_image
        if reference is None:
            raise ParameterError(f"control unit {item.index} has no image")
        image = load_image(image_source(reference))
        mask = None
        if unit.module == "inpaint_only":
            if inpaint_mask is None or reference != init_image:
                raise ParameterError("an inpaint_only unit works on the init image with the request's inpaint mask")
            mask = inpaint_mask
        if crop is not None and reference == init_image:
            image = image[crop[1]:crop[3], crop[0]:crop[2]]
            mask = mask[crop[1]:crop[3], crop[0]:crop[2]] if mask is not None else None
        if item.is_ip:  # no map: the image itself is encoded
            from kekong.models import ip_adapter

            encoder = ip_adapter.load_image_encoder(ip_adapter.find_image_encoder(item.controlnet))
            item.ip_embeds = ip_adapter.image_embeds(encoder, image, item.controlnet.plus)
            item.image_key = f"{source_sha256(reference)}:{unit.module}:{item.model_name}"
            continue
        if unit.module == "none":
            detected = image
        else:
            detected = run(unit.module, image, res=unit.res, pixel_perfect=unit.pixel_perfect,
                           target_hw=size_hw, resize_mode=unit.resize_mode, mask=mask, **unit.params).image
        fitted = fit_to_target(detected, size_hw, unit.resize_mode)
        item.detected = fitted
        item.cond = to_tensor(fitted)
        item.image_key = f"{source_sha256(reference)}:{unit.module}:{sorted(unit.params.items())}:" \
                         f"{unit.res}:{unit.pixel_perfect}:{unit.resize_mode.value}:{item.model_name}"
        if unit.mask is not None:
            item.region = region_mask(load_image(image_source(unit.mask)), size_hw)


def to_tensor(control: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 → float (1, 3, H, W) in [0, 1]; float maps (inpaint) pass through."""
    array = control.astype(np.float32) / 255.0 if control.dtype == np.uint8 else control.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def region_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> torch.Tensor:
    """A region mask image (white = the unit acts) → (1, 1, H, W) float in [0, 1]."""
    grey = mask.mean(axis=2).astype(np.float32) / 255.0
    if not grey.any():
        raise ParameterError("a control unit's region mask is all black: the unit would do nothing")
    fitted = resize_map((grey * 255).astype(np.uint8), size_hw).astype(np.float32) / 255.0
    return torch.from_numpy(fitted)[None, None]

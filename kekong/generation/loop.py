"""The denoising loop, with ControlNet units applied the way sd-webui-controlnet defines them.

Our own loop rather than diffusers' pipeline, for what the pipeline cannot do:
- a unit outside its [start, end] window is not evaluated at all (diffusers runs it and
  multiplies by 0; skipping gives the identical result — same window rule, adding zero is exact);
- a unit that controls only the conditional half of the CFG batch ("ControlNet is more
  important", guess mode) is evaluated on that half only;
- units sharing a ControlNet and a control image share one evaluation;
- per-unit region masks (a unit's residuals are zero outside its mask);
- per-unit control modes, soft injection scales, and step callbacks with cancellation.
Everything else follows StableDiffusionControlNetPipeline step for step, so with one balanced
unit the result is bit-identical to it (the benchmark checks this).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from kekong.generation.control import PreparedUnit
from kekong.generation.text import Conditioning, Schedule, pick


class Cancelled(Exception):
    """Generation was cancelled between steps; nothing was written."""


@dataclass
class StepInfo:
    step: int  # 1-based
    total: int
    latents: torch.Tensor

    def preview(self) -> Any:
        from kekong.generation.preview import latents_to_rgb

        return latents_to_rgb(self.latents)


OnStep = Callable[[StepInfo], bool | None]  # return False to cancel


@dataclass
class Guidance:
    parts: list[tuple[float, Schedule]]  # (weight, conditioning per step) per AND part of the prompt
    uncond: Schedule | None  # None when CFG scale is 1 (no unconditional pass)
    scale: float
    steps: int  # sampling steps the schedules count in
    time_ids: torch.Tensor | None = None  # SDXL micro-conditioning (B, 6; the refiner's B, 5)
    uncond_time_ids: torch.Tensor | None = None  # where they differ (the refiner's aesthetic score)

    def inputs(self, step: int) -> tuple[torch.Tensor, dict | None]:
        """UNet text inputs at a 1-based step: [uncond, part 1, part 2, …] stacked."""
        conds = [pick(schedule_, step) for _, schedule_ in self.parts]
        return _stack(conds, pick(self.uncond, step) if self.uncond else None, self.time_ids,
                      self.uncond_time_ids)

    def combine(self, prediction: torch.Tensor, batch: int) -> torch.Tensor:
        """Classifier-free guidance (composable: uncond + scale · Σ wᵢ (condᵢ − uncond))."""
        weights = [w for w, _ in self.parts]
        if self.uncond is None:
            chunks = prediction.chunk(len(weights))
            if len(weights) == 1:
                return chunks[0]
            return sum(w * c for w, c in zip(weights, chunks, strict=True)) / sum(weights)
        uncond, conds = prediction[:batch], prediction[batch:].chunk(len(weights))
        if weights == [1.0]:  # written as diffusers writes it, so results match it bit for bit
            return uncond + self.scale * (conds[0] - uncond)
        return uncond + self.scale * sum(w * (c - uncond) for w, c in zip(weights, conds, strict=True))


@dataclass
class InpaintBlend:
    """For UNets without inpaint channels: keep the unmasked latents on the original's path."""

    init_latents: torch.Tensor
    noise: torch.Tensor
    mask: torch.Tensor  # (B, 1, h, w), 1 = repaint


@dataclass
class InpaintChannels:
    """For 9-channel inpainting UNets: mask and masked-image latents concatenated to the input."""

    mask: torch.Tensor  # (B, 1, h, w)
    masked_latents: torch.Tensor  # (B, 4, h, w)


def _stack(conds: list[Conditioning], uncond: Conditioning | None, time_ids: torch.Tensor | None,
           uncond_time_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, dict | None]:
    rows = ([uncond] if uncond is not None else []) + conds
    embeds = torch.cat([c.embeds for c in rows])
    if conds[0].pooled is None:
        return embeds, None
    ids = [time_ids] * len(conds)
    if uncond is not None:
        ids.insert(0, uncond_time_ids if uncond_time_ids is not None else time_ids)
    return embeds, {"text_embeds": torch.cat([c.pooled for c in rows]), "time_ids": torch.cat(ids)}


@dataclass
class Refiner:
    """A second model that takes over the sampling from step index `start` (A1111's refiner)."""

    start: int
    unet: Any
    guidance: Guidance


def _conditional(tensor: Any, uncond_rows: int) -> Any:
    """The conditional rows of a CFG-batched tensor (or dict of tensors)."""
    if tensor is None or not uncond_rows:
        return tensor
    if isinstance(tensor, dict):
        return {k: _conditional(v, uncond_rows) for k, v in tensor.items()}
    return tensor[uncond_rows:]


@torch.no_grad()
def control_residuals(
    units: list[PreparedUnit], step: int, total: int, latent_in: torch.Tensor, t: torch.Tensor,
    embeds: torch.Tensor, added: dict | None, uncond_rows: int,
) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
    """Sum of the active units' residuals for this step, or (None, None) when none is active.
    Rows [0, uncond_rows) of the batch are the unconditional ones (none without CFG)."""
    active = [u for u in units if not (u.is_adapter or u.is_ip or u.is_reference) and u.active(step, total)]
    if not active:
        return None, None
    groups: dict[tuple[int, str], list[PreparedUnit]] = {}
    for unit in active:
        groups.setdefault((id(unit.controlnet), unit.image_key, unit.union_index), []).append(unit)
    total_down: list[torch.Tensor] | None = None
    total_mid: torch.Tensor | None = None
    for members in groups.values():
        cond_only = uncond_rows > 0 and all(u.cfg_injection for u in members)
        x, e, a = (latent_in, embeds, added) if not cond_only else (
            _conditional(latent_in, uncond_rows), _conditional(embeds, uncond_rows), _conditional(added, uncond_rows))
        image = members[0].cond.expand(x.shape[0], -1, -1, -1)
        kwargs = {"added_cond_kwargs": a} if a is not None else {}
        if members[0].union_index is not None:  # ControlNet Union: the map's control-type slot
            from kekong.models.union import one_hot

            index = members[0].union_index
            kwargs.update(control_type=one_hot(members[0].controlnet, index, x.shape[0]), control_type_idx=[index])
            image = [image]
        down, mid = members[0].controlnet(x, t, encoder_hidden_states=e, controlnet_cond=image,
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


def ip_inputs(unet: Any, units: list[PreparedUnit], step: int, total: int, batch: int, cfg: bool,
              parts: int) -> list[torch.Tensor]:
    """IP-Adapter image embeddings in the batch's row order ([uncond] + conditional rows), and each
    adapter's scale for this step (its weight inside its window, else 0)."""
    from kekong.models.ip_adapter import set_scales

    set_scales(unet, [u.unit.weight if u.active(step, total) else 0.0 for u in units])
    embeds = []
    for unit in units:
        cond, uncond = unit.ip_embeds
        rows = [cond] * (batch * parts)
        if cfg:
            rows = [uncond] * batch + rows
        embeds.append(torch.cat(rows))
    return embeds


@torch.no_grad()
def adapter_features(units: list[PreparedUnit], step: int, total: int, rows: int,
                     uncond_rows: int) -> list[torch.Tensor] | None:
    """Sum of the active T2I-Adapter units' features for the UNet's down blocks (None when none
    is active). An adapter does not see the timestep, so each runs once per generation."""
    total_features: list[torch.Tensor] | None = None
    for unit in units:
        if not (unit.is_adapter and unit.active(step, total)):
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


@torch.no_grad()
def denoise(
    unet: Any, scheduler: Any, latents: torch.Tensor, timesteps: torch.Tensor, guidance: Guidance,
    units: list[PreparedUnit], generators: list[torch.Generator], on_step: OnStep | None = None,
    blend: InpaintBlend | None = None, channels: InpaintChannels | None = None, refiner: Refiner | None = None,
    reference: Any = None,
) -> torch.Tensor:
    """Run the sampler over `timesteps`; returns the final latents. With a refiner, its UNet and
    conditioning take over at `refiner.start`; control units act before the switch only. With a
    reference (reference-only), the UNet's self-attention reads the reference picture each step."""
    step_kwargs = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    if reference is None:
        return _denoise(unet, scheduler, latents, timesteps, guidance, units, on_step, blend, channels, refiner,
                        None, step_kwargs)
    from kekong.generation.reference import installed

    with installed(unet, reference.bank):
        return _denoise(unet, scheduler, latents, timesteps, guidance, units, on_step, blend, channels, refiner,
                        reference, step_kwargs)


def _denoise(unet: Any, scheduler: Any, latents: torch.Tensor, timesteps: torch.Tensor, guidance: Guidance,
             units: list[PreparedUnit], on_step: OnStep | None, blend: InpaintBlend | None,
             channels: InpaintChannels | None, refiner: Refiner | None, reference: Any, step_kwargs: dict
             ) -> torch.Tensor:
    cfg = guidance.uncond is not None
    batch = latents.shape[0]
    copies = len(guidance.parts) + (1 if cfg else 0)
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        if refiner is not None and i == refiner.start:
            if reference is not None:
                reference.bank.clear()
            unet, guidance, units, reference = refiner.unet, refiner.guidance, [], None
        embeds, added = guidance.inputs(i * guidance.steps // total + 1)
        latent_in = torch.cat([latents] * copies) if copies > 1 else latents
        latent_in = scheduler.scale_model_input(latent_in, t)
        down, mid = control_residuals(units, i, total, latent_in, t, embeds, added, batch if cfg else 0)
        unet_in = latent_in
        if channels is not None:
            unet_in = torch.cat([latent_in, channels.mask.repeat(copies, 1, 1, 1),
                                 channels.masked_latents.repeat(copies, 1, 1, 1)], dim=1)
        kwargs = {"added_cond_kwargs": added} if added is not None else {}
        features = adapter_features(units, i, total, latent_in.shape[0], batch if cfg else 0)
        if features is not None:
            kwargs["down_intrablock_additional_residuals"] = features  # the UNet pops from this list
        ip_units = [u for u in units if u.is_ip]
        if ip_units:
            kwargs["added_cond_kwargs"] = {**kwargs.get("added_cond_kwargs", {}),
                                           "image_embeds": ip_inputs(unet, ip_units, i, total, batch, cfg,
                                                                     len(guidance.parts))}
        if reference is not None:
            if reference.unit.active(i, total):
                from kekong.generation.reference import write

                write(unet, scheduler, reference, t, embeds, kwargs.get("added_cond_kwargs"), batch if cfg else 0)
            else:
                reference.bank.clear()
        noise_pred = unet(unet_in, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                          mid_block_additional_residual=mid, return_dict=False, **kwargs)[0]
        if reference is not None:
            reference.bank.clear()
        noise_pred = guidance.combine(noise_pred, batch)
        latents = scheduler.step(noise_pred, t, latents, return_dict=False, **step_kwargs)[0]
        if blend is not None:
            keep = blend.init_latents
            if i < total - 1:
                keep = scheduler.add_noise(blend.init_latents, blend.noise, timesteps[i + 1:i + 2])
            latents = (1 - blend.mask) * keep + blend.mask * latents
        if on_step is not None and on_step(StepInfo(i + 1, total, latents)) is False:
            raise Cancelled("cancelled")
    return latents

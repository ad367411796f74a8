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
    cond: Schedule  # conditioning per step (prompt editing, alternation)
    uncond: Schedule | None  # None when CFG scale is 1 (no unconditional pass)
    scale: float
    steps: int  # sampling steps the schedules count in
    time_ids: torch.Tensor | None = None  # SDXL micro-conditioning (B, 6)

    def inputs(self, step: int) -> tuple[torch.Tensor, dict | None]:
        """UNet text inputs at a 1-based step: [uncond, cond] stacked for CFG."""
        return _cfg_inputs(pick(self.cond, step), pick(self.uncond, step) if self.uncond else None, self.time_ids)


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


def _cfg_inputs(cond: Conditioning, uncond: Conditioning | None,
                time_ids: torch.Tensor | None) -> tuple[torch.Tensor, dict | None]:
    embeds = cond.embeds if uncond is None else torch.cat([uncond.embeds, cond.embeds])
    if cond.pooled is None:
        return embeds, None
    pooled = cond.pooled if uncond is None else torch.cat([uncond.pooled, cond.pooled])
    time_ids = time_ids if uncond is None else torch.cat([time_ids, time_ids])
    return embeds, {"text_embeds": pooled, "time_ids": time_ids}


def _half(tensor: Any, batch: int, cfg: bool) -> Any:
    """The conditional half of a CFG-batched tensor (or dict of tensors)."""
    if tensor is None or not cfg:
        return tensor
    if isinstance(tensor, dict):
        return {k: _half(v, batch, cfg) for k, v in tensor.items()}
    return tensor[batch:]


@torch.no_grad()
def control_residuals(
    units: list[PreparedUnit], step: int, total: int, latent_in: torch.Tensor, t: torch.Tensor,
    embeds: torch.Tensor, added: dict | None, cfg: bool,
) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
    """Sum of the active units' residuals for this step, or (None, None) when none is active."""
    active = [u for u in units if u.active(step, total)]
    if not active:
        return None, None
    full = latent_in.shape[0]
    batch = full // 2 if cfg else full
    groups: dict[tuple[int, str], list[PreparedUnit]] = {}
    for unit in active:
        groups.setdefault((id(unit.controlnet), unit.image_key), []).append(unit)
    total_down: list[torch.Tensor] | None = None
    total_mid: torch.Tensor | None = None
    for members in groups.values():
        cond_only = cfg and all(u.cfg_injection for u in members)
        x, e, a = (latent_in, embeds, added) if not cond_only else (
            _half(latent_in, batch, cfg), _half(embeds, batch, cfg), _half(added, batch, cfg))
        image = members[0].cond.expand(x.shape[0], -1, -1, -1)
        kwargs = {"added_cond_kwargs": a} if a is not None else {}
        down, mid = members[0].controlnet(x, t, encoder_hidden_states=e, controlnet_cond=image,
                                          conditioning_scale=1.0, guess_mode=False, return_dict=False, **kwargs)
        for unit in members:
            outputs = [*down, mid]
            scales = unit.scales(len(outputs))
            scaled = []
            for out, scale in zip(outputs, scales, strict=True):
                r = out * scale
                if unit.region is not None:
                    r = r * F.interpolate(unit.region, size=r.shape[-2:], mode="area")
                if cfg and not cond_only and unit.cfg_injection:
                    r = torch.cat([torch.zeros_like(r[:batch]), r[batch:]])
                if cond_only:
                    r = torch.cat([torch.zeros_like(r), r])
                scaled.append(r)
            if total_down is None:
                total_down, total_mid = scaled[:-1], scaled[-1]
            else:
                total_down = [a + b for a, b in zip(total_down, scaled[:-1], strict=True)]
                total_mid = total_mid + scaled[-1]
    return total_down, total_mid


@torch.no_grad()
def denoise(
    unet: Any, scheduler: Any, latents: torch.Tensor, timesteps: torch.Tensor, guidance: Guidance,
    units: list[PreparedUnit], generators: list[torch.Generator], on_step: OnStep | None = None,
    blend: InpaintBlend | None = None, channels: InpaintChannels | None = None,
) -> torch.Tensor:
    """Run the sampler over `timesteps`; returns the final latents."""
    cfg = guidance.uncond is not None
    step_kwargs = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        embeds, added = guidance.inputs(i * guidance.steps // total + 1)
        latent_in = torch.cat([latents] * 2) if cfg else latents
        latent_in = scheduler.scale_model_input(latent_in, t)
        down, mid = control_residuals(units, i, total, latent_in, t, embeds, added, cfg)
        unet_in = latent_in
        if channels is not None:
            repeat = 2 if cfg else 1
            unet_in = torch.cat([latent_in, channels.mask.repeat(repeat, 1, 1, 1),
                                 channels.masked_latents.repeat(repeat, 1, 1, 1)], dim=1)
        kwargs = {"added_cond_kwargs": added} if added is not None else {}
        noise_pred = unet(unet_in, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                          mid_block_additional_residual=mid, return_dict=False, **kwargs)[0]
        if cfg:
            noise_uncond, noise_text = noise_pred.chunk(2)
            noise_pred = noise_uncond + guidance.scale * (noise_text - noise_uncond)
        latents = scheduler.step(noise_pred, t, latents, return_dict=False, **step_kwargs)[0]
        if blend is not None:
            keep = blend.init_latents
            if i < total - 1:
                keep = scheduler.add_noise(blend.init_latents, blend.noise, timesteps[i + 1:i + 2])
            latents = (1 - blend.mask) * keep + blend.mask * latents
        if on_step is not None and on_step(StepInfo(i + 1, total, latents)) is False:
            raise Cancelled("cancelled")
    return latents

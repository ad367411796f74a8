"""The denoising loop; control units act through their kinds (generation/units/), which the loop
asks each step for what they add to the UNet call.

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
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from kekong.generation.fast import FastPlan
from kekong.generation.text import Conditioning, Schedule, pick
from kekong.generation.units.base import Contribution, Sampling, Step, Unit, by_kind


class Cancelled(Exception):
    """Generation was cancelled between steps; nothing was written."""


class Stop(str, Enum):
    """What a step callback may answer to end the batch now and keep it as far as it got (A1111)."""

    BATCH = "skip"  # A1111's skip: this batch ends here, the next one goes on
    ALL = "interrupt"  # A1111's interrupt: this batch ends here and no further batch runs


class Stopped(Exception):
    """A step callback answered a Stop: `latents` as they are after that step (`step` of the
    pass's `total`); the pipeline sets `images` (those latents decoded) and `hires` (stopped in the
    second pass) before it hands the exception on."""

    def __init__(self, stop: Stop, latents: torch.Tensor, step: int = 0, total: int = 0) -> None:
        super().__init__(stop.value)
        self.stop, self.latents, self.step, self.total = stop, latents, step, total
        self.images: list[Any] = []
        self.hires = False

    def record(self) -> dict[str, Any]:
        """What an image stopped here records (recipe `image.stopped`, infotext `Stopped at step`)."""
        where = "hires" if self.hires else "first"
        return {"stop": self.stop.value, "step": self.step, "of": self.total, "pass": where}


@dataclass
class StepInfo:
    step: int  # 1-based
    total: int
    latents: torch.Tensor
    denoised: torch.Tensor | None = None  # the sampler's clean-latent estimate, where it gives one

    @property
    def shown(self) -> torch.Tensor:
        """What a preview decodes: the predicted clean latents, as A1111 previews them, else the latents."""
        return self.denoised if self.denoised is not None else self.latents

    def preview(self) -> Any:
        from kekong.generation.preview import latents_to_rgb

        return latents_to_rgb(self.shown)


OnStep = Callable[[StepInfo], "bool | Stop | None"]  # False: cancel (Cancelled); a Stop: Stopped


@dataclass
class Guidance:
    parts: list[tuple[float, Schedule]]  # (weight, conditioning per step) per AND part of the prompt
    uncond: Schedule | None  # None when CFG scale is 1 (no unconditional pass)
    scale: float
    steps: int  # sampling steps the schedules count in
    time_ids: torch.Tensor | None = None  # SDXL micro-conditioning (B, 6; the refiner's B, 5)
    uncond_time_ids: torch.Tensor | None = None  # where they differ (the refiner's aesthetic score)

    def inputs(self, step: int) -> tuple[torch.Tensor, dict | None]:
        """UNet text inputs after `step` steps (A1111's step counter, from 0: an edit `[a:b:10]` still
        gives `a` at counter 10): [uncond, part 1, part 2, …] stacked."""
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


@torch.no_grad()
def denoise(
    unet: Any, scheduler: Any, latents: torch.Tensor, timesteps: torch.Tensor, guidance: Guidance,
    units: Sequence[Unit], generators: list[torch.Generator], on_step: OnStep | None = None,
    blend: InpaintBlend | None = None, channels: InpaintChannels | None = None, refiner: Refiner | None = None,
    sampling: Sampling | None = None, fast: FastPlan | None = None,
) -> torch.Tensor:
    """Run the sampler over `timesteps`; returns the final latents. Each step, every kind of control
    unit adds its units' contribution to the UNet call (generation/units/). With a refiner, its UNet
    and conditioning take over at `refiner.start`; control units act before the switch only.
    `fast`: fast mode's plan (generation/fast.py); None runs the exact path."""
    step_kwargs = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    kinds = by_kind(units)
    with ExitStack() as stack:
        for kind, members in kinds:  # e.g. reference-only's attention hooks, for this run
            stack.enter_context(kind.sampling(members, unet, sampling))
        return _denoise(unet, scheduler, latents, timesteps, guidance, kinds, on_step, blend, channels, refiner,
                        step_kwargs, fast)


def _denoise(unet: Any, scheduler: Any, latents: torch.Tensor, timesteps: torch.Tensor, guidance: Guidance,
             kinds: list[tuple[type[Unit], list[Unit]]], on_step: OnStep | None, blend: InpaintBlend | None,
             channels: InpaintChannels | None, refiner: Refiner | None, step_kwargs: dict,
             fast: FastPlan | None = None) -> torch.Tensor:
    cfg = guidance.uncond is not None
    batch = latents.shape[0]
    copies = len(guidance.parts) + (1 if cfg else 0)
    total = len(timesteps)
    # a unit's window: evaluations against the planned steps, a DPM adaptive try's three as one step
    window_total = total * getattr(timesteps, "evaluations_per_step", 1)
    for i, t in enumerate(timesteps):
        if refiner is not None and i == refiner.start:
            unet, guidance, kinds = refiner.unet, refiner.guidance, []
        embeds, added = guidance.inputs(i * guidance.steps // total)  # steps done, as A1111's CFGDenoiser.step
        latent_in = torch.cat([latents] * copies) if copies > 1 else latents
        latent_in = scheduler.scale_model_input(latent_in, t)
        step = Step(i, window_total, t, latent_in, embeds, added, batch, batch if cfg else 0, len(guidance.parts), unet,
                    scheduler, fast, fast is not None and fast.shallow(i, unet))
        given = Contribution()
        for kind, members in kinds:
            contribution = _contribution(kind, members, step)
            if contribution is not None:
                given = given + contribution
        unet_in = latent_in
        if channels is not None:
            unet_in = torch.cat([latent_in, channels.mask.repeat(copies, 1, 1, 1),
                                 channels.masked_latents.repeat(copies, 1, 1, 1)], dim=1)
        kwargs = {"added_cond_kwargs": added} if added is not None else {}
        if given.features is not None:
            kwargs["down_intrablock_additional_residuals"] = given.features  # the UNet pops from this list
        if given.image_embeds is not None:
            kwargs["added_cond_kwargs"] = {**kwargs.get("added_cond_kwargs", {}), "image_embeds": given.image_embeds}
        for kind, members in kinds:  # with the call's final inputs (reference-only's pass reads IP-Adapter's)
            kind.before_unet(members, step, kwargs.get("added_cond_kwargs"))
        with fast.unet_call(unet, i) if fast is not None else nullcontext():
            noise_pred = unet(unet_in, t, encoder_hidden_states=embeds, down_block_additional_residuals=given.down,
                              mid_block_additional_residual=given.mid, return_dict=False, **kwargs)[0]
        for kind, members in kinds:
            kind.after_unet(members, step)
        if getattr(scheduler, "needs_uncond", False):  # DDIM CFG++ steps back along the unconditional prediction
            scheduler.uncond = noise_pred[:batch] if cfg else None
        noise_pred = guidance.combine(noise_pred, batch)
        out = scheduler.step(noise_pred, t, latents, return_dict=False, **step_kwargs)
        latents, denoised = out[0], (out[1] if len(out) > 1 else None)  # (prev_sample, pred_original_sample)
        if blend is not None:
            keep, upcoming = blend.init_latents, timesteps[i + 1:i + 2]  # empty after the last evaluation
            if len(upcoming):
                keep = scheduler.add_noise(blend.init_latents, blend.noise, upcoming)
            latents = (1 - blend.mask) * keep + blend.mask * latents
        answer = on_step(StepInfo(i + 1, total, latents, denoised)) if on_step is not None else None
        if answer is False:
            raise Cancelled("cancelled")
        if isinstance(answer, Stop):
            raise Stopped(answer, latents, i + 1, total)
    return latents


def _contribution(kind: type[Unit], members: list[Unit], step: Step) -> Contribution | None:
    """What a kind adds this step; in fast mode a reusable kind's kept contribution between full steps."""
    if step.fast is None:
        return kind.contribute(members, step)
    key = tuple(unit.active(step.index, step.total) for unit in members)
    kept = step.fast.reused(kind, key, step.index)
    if kept is not None:
        return kept
    contribution = kind.contribute(members, step)
    step.fast.keep(kind, key, step.index, contribution)
    return contribution

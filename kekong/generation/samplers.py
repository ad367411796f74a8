"""A1111's sampler and schedule-type names → the scheduler that runs them.

A1111 1.10 names a sampler and a schedule type separately ("DPM++ 2M" + "Karras"); older
infotexts and API clients send one combined name ("DPM++ 2M Karras"), which is split here.
The names are declared in kekong.choices. The k-diffusion samplers run as kekong's ports of
k-diffusion (generation/k_samplers.py) with A1111's noise levels (generation/schedules.py);
DDIM, DDIM CFG++, PLMS, UniPC and LCM run as diffusers schedulers.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

# The name tables live in the leaf kekong.choices; re-exported here for existing imports.
from kekong.choices import (  # noqa: F401
    DIFFUSERS_SCHEDULES,
    SAMPLER_NAMES,
    SAMPLERS,
    SCHEDULE_TYPES,
    SamplerSpec,
    check_schedule,
    split_sampler_name,
)
from kekong.errors import ParameterError


def resolved_schedule(sampler: str, schedule: str) -> str:
    """The schedule type actually used: "Automatic" becomes the sampler's default."""
    return SAMPLERS[sampler].default_schedule if schedule == "Automatic" else schedule


def infotext_schedule(sampler: str, schedule: str) -> str:
    """The `Schedule type` A1111 writes: the type used, except "Automatic" where Automatic means the
    sampler's own noise levels (A1111 then names none: Euler, Euler a, LMS, Heun, DPM fast, DPM
    adaptive, DDIM …) — so DPM fast and DPM adaptive, which take no other type, read back."""
    resolved = resolved_schedule(sampler, schedule)
    return "Automatic" if schedule == "Automatic" and resolved == "Uniform" else resolved


def image_steps(sampler: str, steps: int, denoising_strength: float, hires: bool = False) -> tuple[int, int]:
    """(noise levels to make, steps to run: the last ones) for a pass that starts from an image, as A1111's
    setup_img2img_steps. img2img (`hires` False): `steps` levels, of which a k-diffusion sampler runs
    int(min(strength, 0.999) · steps) + 1 (A1111 starts one level above the strength); the diffusers-run
    samplers run int(strength · steps). The hires pass (A1111 passes its steps, as with img2img_fix_steps):
    all `steps`, the last of int(steps / min(strength, 0.999)) levels. A1111's DDIM: its t_enc,
    int(min(strength, 0.999) · steps) (hires: steps − 1), as ddim_a1111.begin_at takes it."""
    strength = min(denoising_strength, 0.999)
    if SAMPLERS[sampler].a1111_timesteps:  # A1111's DDIM: t_enc of `steps` (its loop then runs t_enc − 1)
        if hires:
            return (int(steps / strength), steps - 1) if strength > 0 else (steps, 0)
        return steps, int(strength * steps)
    if hires:
        return (int(steps / strength), steps) if strength > 0 else (steps, 0)
    if SAMPLERS[sampler].algorithm:
        return steps, min(int(strength * steps) + 1, steps) if strength > 0 else 0
    return steps, min(int(steps * denoising_strength), steps)


def ddim_evaluations(steps: int, train_timesteps: int = 1000) -> int:
    """Model evaluations of A1111's DDIM at `steps` (txt2img): its timesteps, range(0, 1000, 1000 // steps),
    but the lowest."""
    return len(range(0, train_timesteps, train_timesteps // steps)) - 1


def make_scheduler(sampler: str, schedule: str, base_config: dict[str, Any], seed: int | Sequence[int] | None = None,
                   sdxl: bool = False) -> Any:
    """A fresh scheduler for `sampler`/`schedule` from the base model's scheduler config.
    `seed`: the images' seeds (one Brownian tree per image for the SDE samplers, as A1111 seeds
    them; one int seeds one tree for the batch); `sdxl` picks Align Your Steps' SDXL table."""
    check_schedule(sampler, schedule)
    spec = SAMPLERS[sampler]
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    if spec.algorithm:
        from kekong.generation.k_scheduler import KDiffusionScheduler

        return KDiffusionScheduler(spec.algorithm, resolved_schedule(sampler, schedule), config,
                                   spec.discard_penultimate, seed, sdxl)
    return _diffusers_scheduler(spec, sampler, resolved_schedule(sampler, schedule), config)


def _diffusers_scheduler(spec: SamplerSpec, sampler: str, schedule: str, config: dict[str, Any]) -> Any:
    import diffusers

    if spec.scheduler_class == "DDIMCFGPlusPlusScheduler":
        from kekong.generation.ddim_cfgpp import DDIMCFGPlusPlusScheduler as cls
    elif spec.scheduler_class == "A1111DDIMScheduler":
        from kekong.generation.ddim_a1111 import A1111DDIMScheduler as cls
    else:
        cls = getattr(diffusers, spec.scheduler_class)
    options = dict(spec.options)
    option = DIFFUSERS_SCHEDULES[schedule]
    accepted = inspect.signature(cls.__init__).parameters
    for key in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
        if key in accepted:
            options[key] = False  # a base config may carry another schedule's switch
    if option is not None:
        if option[0] not in accepted:
            raise ParameterError(f"sampler {sampler!r} does not support the {schedule} schedule type")
        options[option[0]] = option[1]
    # Options another scheduler's config carries that this one lacks are ignored by from_config.
    return cls.from_config({**config, **options})

"""A1111's sampler and schedule-type names → diffusers schedulers.

A1111 1.10 names a sampler and a schedule type separately ("DPM++ 2M" + "Karras"); older
infotexts and API clients send one combined name ("DPM++ 2M Karras"), which is split here.
This module is import-light (no diffusers at import time): the request model uses its names.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from kekong.errors import ParameterError


@dataclass(frozen=True)
class SamplerSpec:
    scheduler_class: str
    options: dict[str, Any] = field(default_factory=dict)
    default_schedule: str = "Uniform"  # what A1111's "Automatic" picks for this sampler


SAMPLERS: dict[str, SamplerSpec] = {
    "DPM++ 2M": SamplerSpec("DPMSolverMultistepScheduler",
                            {"algorithm_type": "dpmsolver++", "solver_order": 2}, "Karras"),
    "DPM++ SDE": SamplerSpec("DPMSolverSDEScheduler", {}, "Karras"),
    "DPM++ 2M SDE": SamplerSpec("DPMSolverMultistepScheduler",
                                {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}, "Karras"),
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler"),
    "Euler": SamplerSpec("EulerDiscreteScheduler"),
    "LMS": SamplerSpec("LMSDiscreteScheduler"),
    "Heun": SamplerSpec("HeunDiscreteScheduler"),
    "DPM2": SamplerSpec("KDPM2DiscreteScheduler", {}, "Karras"),
    "DPM2 a": SamplerSpec("KDPM2AncestralDiscreteScheduler", {}, "Karras"),
    "DDIM": SamplerSpec("DDIMScheduler", {"set_alpha_to_one": False}),
    "PLMS": SamplerSpec("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": SamplerSpec("UniPCMultistepScheduler"),
    "LCM": SamplerSpec("LCMScheduler"),
}
SAMPLER_NAMES = tuple(SAMPLERS)

# Schedule type → the scheduler option that gives it (None: the scheduler's own spacing).
SCHEDULES: dict[str, tuple[str, Any] | None] = {
    "Automatic": None,
    "Uniform": None,
    "Karras": ("use_karras_sigmas", True),
    "Exponential": ("use_exponential_sigmas", True),
    "Beta": ("use_beta_sigmas", True),
    "SGM Uniform": ("timestep_spacing", "trailing"),
}
SCHEDULE_TYPES = tuple(SCHEDULES)


def split_sampler_name(sampler: str, schedule: str = "Automatic") -> tuple[str, str]:
    """("DPM++ 2M Karras", "Automatic") → ("DPM++ 2M", "Karras"); unknown names pass through."""
    sampler = sampler.strip()
    lowered = {name.lower(): name for name in SAMPLER_NAMES}
    if sampler.lower() in lowered:
        return lowered[sampler.lower()], _schedule_name(schedule)
    for suffix in SCHEDULE_TYPES:
        if sampler.lower().endswith(" " + suffix.lower()):
            base = sampler[: -len(suffix) - 1].strip().lower()
            if base in lowered and _schedule_name(schedule) == "Automatic":
                return lowered[base], suffix
    return sampler, _schedule_name(schedule)


def _schedule_name(schedule: str) -> str:
    for name in SCHEDULE_TYPES:
        if schedule.strip().lower() == name.lower():
            return name
    return schedule


def resolved_schedule(sampler: str, schedule: str) -> str:
    """The schedule type actually used: "Automatic" becomes the sampler's default."""
    return SAMPLERS[sampler].default_schedule if schedule == "Automatic" else schedule


def make_scheduler(sampler: str, schedule: str, base_config: dict[str, Any]) -> Any:
    """A fresh diffusers scheduler for `sampler`/`schedule` from the base model's scheduler config."""
    import diffusers

    spec = SAMPLERS[sampler]
    cls = getattr(diffusers, spec.scheduler_class)
    options = dict(spec.options)
    schedule = resolved_schedule(sampler, schedule)
    option = SCHEDULES[schedule]
    accepted = inspect.signature(cls.__init__).parameters
    for key in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
        if key in accepted:
            options[key] = False  # a base config may carry another schedule's switch
    if option is not None:
        if option[0] not in accepted:
            raise ParameterError(f"sampler {sampler!r} does not support the {schedule} schedule type")
        options[option[0]] = option[1]
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    # Options another scheduler's config carries that this one lacks are ignored by from_config.
    return cls.from_config({**config, **options})

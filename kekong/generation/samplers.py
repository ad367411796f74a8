"""A1111's sampler and schedule-type names → diffusers schedulers.

A1111 1.10 names a sampler and a schedule type separately ("DPM++ 2M" + "Karras"); older
infotexts and API clients send one combined name ("DPM++ 2M Karras"), which is split here.
The names are declared in kekong.choices; this module maps them onto diffusers.
"""

from __future__ import annotations

import inspect
from typing import Any

# The name tables live in the leaf kekong.choices; re-exported here for existing imports.
from kekong.choices import (  # noqa: F401
    SAMPLER_NAMES,
    SAMPLERS,
    SCHEDULE_TYPES,
    SCHEDULES,
    SamplerSpec,
    split_sampler_name,
)
from kekong.errors import ParameterError


def resolved_schedule(sampler: str, schedule: str) -> str:
    """The schedule type actually used: "Automatic" becomes the sampler's default."""
    return SAMPLERS[sampler].default_schedule if schedule == "Automatic" else schedule


def make_scheduler(sampler: str, schedule: str, base_config: dict[str, Any], seed: int | None = None) -> Any:
    """A fresh diffusers scheduler for `sampler`/`schedule` from the base model's scheduler config.
    `seed` seeds the Brownian noise of DPM++ SDE (diffusers otherwise draws it from torch's global
    generator, so the same seed would give another image each run; A1111 seeds it with the image's)."""
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
    if seed is not None and "noise_sampler_seed" in accepted:
        options["noise_sampler_seed"] = seed
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    # Options another scheduler's config carries that this one lacks are ignored by from_config.
    return cls.from_config({**config, **options})

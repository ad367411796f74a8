"""A1111's refiner: a second model takes over the sampling at a fraction of the schedule.

The SDXL refiner is the usual one (OpenCLIP-bigG alone, an aesthetic score in its
micro-conditioning), but any model with the same latent space works, as in A1111. The switch
follows A1111: the refiner runs every step whose completed fraction is above `refiner_switch_at`.
Control units steer the base model only (a ControlNet is built for one UNet).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from kekong.errors import ParameterError
from kekong.generation.loop import Guidance, Refiner

# A1111's defaults (sdxl_refiner_high/low_aesthetic_score), as the SDXL refiner was trained with.
AESTHETIC_SCORE = 6.0
NEGATIVE_AESTHETIC_SCORE = 2.5


def switch_index(total: int, switch_at: float) -> int:
    """The first step index the refiner runs: the first i with i / total > switch_at."""
    return min(total, math.floor(switch_at * total) + 1)


def refiner_for(request, total: int, guidance_for: Callable[[object], Guidance]) -> Refiner | None:
    """The refiner of a request, checked against the base model; None when it would run no step."""
    from kekong.models.load import load_base

    start = switch_index(total, request.refiner_switch_at)
    if start >= total:
        return None
    refiner = load_base(request.refiner)  # checked against the base before any work (`check`)
    return Refiner(start, refiner.unet, guidance_for(refiner))


def check(base, reference: str) -> None:
    """Load the refiner and refuse one that cannot continue the base model's latents."""
    from kekong.models.load import load_base

    refiner = load_base(reference)
    if (refiner.vae.config.latent_channels, refiner.vae_scale) != (base.vae.config.latent_channels, base.vae_scale):
        raise ParameterError(f"refiner {refiner.name} works in a different latent space than {base.name} "
                             f"({refiner.vae.config.latent_channels} vs {base.vae.config.latent_channels} channels)")
    if refiner.unet.config.in_channels != refiner.vae.config.latent_channels:
        raise ParameterError(f"refiner {refiner.name} is an inpainting model; a refiner must be a plain one")


def micro_conditioning(base, height: int, width: int, count: int, pooled_dim: int, dtype: torch.dtype
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's size/crop conditioning, (cond, uncond) rows: the base model reads
    (h, w, top, left, target h, target w); the refiner reads (h, w, top, left, aesthetic score)."""
    config = base.unet.config
    slots = (config.projection_class_embeddings_input_dim - pooled_dim) // config.addition_time_embed_dim
    if slots == 5:
        cond = [height, width, 0, 0, AESTHETIC_SCORE]
        uncond = [height, width, 0, 0, NEGATIVE_AESTHETIC_SCORE]
    else:
        cond = uncond = [height, width, 0, 0, height, width]
    return (torch.tensor([cond], dtype=dtype).repeat(count, 1), torch.tensor([uncond], dtype=dtype).repeat(count, 1))

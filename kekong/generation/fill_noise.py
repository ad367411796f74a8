"""sd-webui-controlnet's starting noise for an `inpaint_only+lama` unit (its HackedImageRNG).

The extension encodes the unit's LaMa-filled picture with the VAE and replaces the sampler's first noise
draw ε by q(x_999 | x₀) = √ᾱ₉₉₉·x₀ + √(1 − ᾱ₉₉₉)·ε — the fill noised to the last training step — so
the sampling starts from the fill's colours and layout rather than pure noise. With several such units
the last one's fill is used; where the latents' size is not the fill's (a hires pass), the noise is left
alone, as the extension's size check does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from kekong.generation.schedules import alphas_cumprod


def fill_noise(base: Any, units: Sequence[Any], noise: torch.Tensor,
               encode: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
    """`noise` (B, C, h, w), leaning to the last inpaint_only+lama unit's fill; unchanged without one."""
    fills = [unit.fill for unit in units if getattr(unit, "fill", None) is not None]
    if not fills:
        return noise
    start = encode(fills[-1]).to(noise.dtype)
    if start.shape[-2:] != noise.shape[-2:]:
        return noise
    last = float(alphas_cumprod(base.scheduler_config)[-1])  # ᾱ at t = 999 (num_train_timesteps − 1)
    return last ** 0.5 * start + (1 - last) ** 0.5 * noise

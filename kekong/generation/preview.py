"""Step previews, as A1111's "Live preview method" makes them:
- "Approx cheap": latents → RGB by a fixed linear map, at latent size; costs nothing;
- "TAESD": the tiny autoencoder's decoder at full size, where its weights are on this machine
  (models/taesd.py), else the cheap map;
- "Full": the VAE the generation decodes with (as slow as the final decode): pass the request's
  view of the model (`patch.with_vae`). Previews are decoded on the asking thread (`/progress`,
  the UI) while the worker samples; they read the VAE only, which no request patches, so they
  need no lock and never see another request's LoRA or VAE."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# SD's 4 latent channels → RGB (the widely used approximation coefficients).
_SD_FACTORS = torch.tensor([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173],
                            [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]])


METHODS = ("Approx cheap", "TAESD", "Full")


def render(latents: torch.Tensor, base: Any, method: str = "TAESD") -> np.ndarray:
    """The first image of a latent batch as a uint8 HxWx3 preview."""
    first = latents[:1].float()
    if method == "Full":
        shift = getattr(base.vae.config, "shift_factor", None) or 0.0
        with torch.no_grad():
            pixels = base.vae.decode(first / base.vae.config.scaling_factor + shift, return_dict=False)[0]
        return _uint8((pixels[0] / 2 + 0.5).permute(1, 2, 0))
    if method == "TAESD" and first.shape[1] == 4:
        from kekong.models import taesd

        path = taesd.find(base.family)
        if path is not None:
            return _uint8(taesd.decode(taesd.load(path), first)[0].permute(1, 2, 0))
    return latents_to_rgb(first)


def _uint8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def latents_to_rgb(latents: torch.Tensor) -> np.ndarray:
    """First image of a latent batch → uint8 HxWx3 at latent resolution."""
    first = latents[0].float()
    if first.shape[0] == 4:
        rgb = torch.einsum("chw,cr->hwr", first, _SD_FACTORS)
        rgb = (rgb + 1) / 2
    else:  # other latent widths (the shipped model): per-channel normalised first three
        picked = first[:3] if first.shape[0] >= 3 else first[:1].repeat(3, 1, 1)
        low = picked.amin(dim=(1, 2), keepdim=True)
        high = picked.amax(dim=(1, 2), keepdim=True)
        rgb = ((picked - low) / (high - low + 1e-6)).permute(1, 2, 0)
    return _uint8(rgb)

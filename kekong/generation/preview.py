"""Cheap step previews: latents → RGB by a fixed linear map (no VAE decode), as A1111's
"Approx cheap" does. Good enough to watch composition form; not the final colours."""

from __future__ import annotations

import numpy as np
import torch

# SD's 4 latent channels → RGB (the widely used approximation coefficients).
_SD_FACTORS = torch.tensor([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173],
                            [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]])


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
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()

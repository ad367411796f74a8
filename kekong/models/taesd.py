"""TAESD: the tiny decoder A1111 uses for live previews (madebyollin's Tiny AutoEncoder).

Found where A1111 and diffusers users keep it, nothing downloaded:
- `VAE-approx/taesd_decoder.{pth,safetensors}` (SD 1.x/2.x) or `taesdxl_decoder.*` (SDXL) in the
  models folder — A1111's files, the original Sequential's keys;
- `VAE-approx/taesd` / `taesdxl` diffusers folders, or `madebyollin/taesd` / `madebyollin/taesdxl`
  in the Hugging Face cache (diffusers' AutoencoderTiny).
It reads the UNet's latents directly (no scaling) and costs a few percent of a full VAE decode.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch

from kekong.errors import KekongError
from kekong.models.refs import _hub_cache
from kekong.models.weights import load_state_dict, models_dir

NAMES = {"sdxl": "taesdxl"}  # every other family decodes SD's latent space: taesd


def find(family: str) -> Path | None:
    """The preview decoder for a model family, if this machine has one."""
    name = NAMES.get(family, "taesd")
    folder = models_dir() / "VAE-approx"
    for candidate in (folder / f"{name}_decoder.safetensors", folder / f"{name}_decoder.pth", folder / name):
        if candidate.is_file() or (candidate / "config.json").is_file():
            return candidate
    return _hub_cache(f"madebyollin/{name}")


@cache
def load(path: Path) -> Any:
    """An AutoencoderTiny whose decoder holds the file's weights (eval mode)."""
    from diffusers import AutoencoderTiny

    if path.is_dir():
        return AutoencoderTiny.from_pretrained(path, local_files_only=True).eval()
    state = load_state_dict(path)
    model = AutoencoderTiny()
    # The original decoder is nn.Sequential(Clamp(), conv, …); diffusers drops the Clamp module
    # (it clamps in forward), so every layer index is one lower.
    renamed = {}
    for key, value in state.items():
        index, _, rest = key.partition(".")
        if not index.isdigit() or int(index) < 1:
            raise KekongError(f"{path}: not a TAESD decoder (unexpected key {key!r})")
        renamed[f"layers.{int(index) - 1}.{rest}"] = value
    try:
        model.decoder.load_state_dict(renamed, strict=True)
    except RuntimeError as error:
        raise KekongError(f"{path}: not a TAESD decoder ({str(error).splitlines()[0]})") from None
    return model.eval()


@torch.no_grad()
def decode(model: Any, latents: torch.Tensor) -> torch.Tensor:
    """Latents (B, 4, h, w) → RGB in [0, 1], (B, 3, 8h, 8w)."""
    pixels = model.decoder(latents.float())
    return (pixels / 2 + 0.5).clamp(0, 1)

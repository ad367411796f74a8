"""Hires fix, as A1111 does it: txt2img at the requested size, upscale, then an img2img pass at
the larger size (its own steps, sampler, schedule and prompt; `denoising_strength` applies).

Upscalers: the latent ones resize the first pass's latents (`Latent`, with bilinear, bicubic or
nearest interpolation, optionally antialiased); `Lanczos`, `Nearest` and `None` decode, resize
the image and encode it again; learned ESRGAN-family upscalers (models/esrgan.py) found in the
models folder by their A1111 name do the same with the network, then Lanczos to the exact size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kekong.errors import ParameterError
from kekong.sizes import MAX_SIDE, check_hires

if TYPE_CHECKING:
    from kekong.request import GenerationRequest

LATENT_UPSCALERS = {  # name → (interpolation, antialias)
    "Latent": ("bilinear", False), "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False), "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False), "Latent (nearest-exact)": ("nearest-exact", False),
}
IMAGE_UPSCALERS = {"Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST, "None": Image.LANCZOS}
UPSCALERS = [*LATENT_UPSCALERS, *IMAGE_UPSCALERS]


def check_upscaler(name: str) -> None:
    """Refuse an upscaler that is neither built in nor a learned one in the models folder (this
    looks at files, so it runs in the compatibility step, not in the request model)."""
    if name not in UPSCALERS and learned(name) is None:
        from kekong.models import esrgan

        raise ParameterError(f"hr_upscaler: {name!r} is not available; use one of: "
                             f"{', '.join([*UPSCALERS, *esrgan.available()])} (ESRGAN-family .pth/.safetensors files "
                             f"go in the models folder's ESRGAN/; SwinIR, LDSR and ScuNET are not supported)")


# A1111's names for the Real-ESRGAN models it downloads → their file names
BUILTIN_LEARNED = {"R-ESRGAN 4x+": "RealESRGAN_x4plus", "R-ESRGAN 4x+ Anime6B": "RealESRGAN_x4plus_anime_6B"}


def learned(name: str):
    """The weights file of a learned upscaler by its A1111 name, or None."""
    from kekong.models import esrgan

    return esrgan.find(BUILTIN_LEARNED.get(name, name))


def target_size(request: GenerationRequest, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(height, width) of the second pass (kekong/sizes.py derives it), refused over `max_side`.
    The first pass's size must be resolved (the model's native size when the request left it out)."""
    if request.width is None or request.height is None:
        raise ParameterError("width/height: the hires pass size needs the first pass's size (resolve the model's "
                             "native size first)")
    return check_hires(request.width, request.height, request.hr_scale, request.hr_resize_x, request.hr_resize_y,
                       max_side)


def second_pass(request: GenerationRequest) -> GenerationRequest:
    """The second pass as a request of its own (its size, steps, sampler and prompts)."""
    from kekong.generation.samplers import split_sampler_name

    # the size is known once the model's native size fills a missing width/height (steps alone need none)
    height, width = target_size(request) if request.width and request.height else (None, None)
    sampler, schedule = request.sampler, request.scheduler
    if request.hr_sampler_name:
        sampler, schedule = split_sampler_name(request.hr_sampler_name, request.hr_scheduler or "Automatic")
    elif request.hr_scheduler:
        schedule = request.hr_scheduler
    return request.model_copy(update={
        "width": width, "height": height, "steps": request.hr_second_pass_steps or request.steps,
        "sampler": sampler, "scheduler": schedule, "prompt": request.hr_prompt or request.prompt,
        "negative_prompt": request.hr_negative_prompt or request.negative_prompt})  # seed resize kept, as A1111


def upscale(base, latents: torch.Tensor, size_hw: tuple[int, int], upscaler: str, decode, encode) -> torch.Tensor:
    """First-pass latents → second-pass starting latents at `size_hw` (pixels)."""
    latent_hw = (size_hw[0] // base.vae_scale, size_hw[1] // base.vae_scale)
    if upscaler in LATENT_UPSCALERS:
        mode, antialias = LATENT_UPSCALERS[upscaler]
        options = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
        return F.interpolate(latents, size=latent_hw, mode=mode, antialias=antialias, **options)
    images = decode(latents)
    path = learned(upscaler) if upscaler not in IMAGE_UPSCALERS else None
    if path is not None:
        from kekong.io import max_pixels
        from kekong.models import esrgan

        model = esrgan.load(path)
        images = [esrgan.upscale_to(model, image, size_hw, max_pixels()) for image in images]
    resample = IMAGE_UPSCALERS.get(upscaler, Image.LANCZOS)
    images = [np.asarray(Image.fromarray(image).resize((size_hw[1], size_hw[0]), resample)) for image in images]
    return torch.cat([encode(image) for image in images])

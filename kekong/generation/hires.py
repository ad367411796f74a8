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

if TYPE_CHECKING:
    from kekong.request import GenerationRequest

LATENT_UPSCALERS = {  # name → (interpolation, antialias)
    "Latent": ("bilinear", False), "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False), "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False), "Latent (nearest-exact)": ("nearest-exact", False),
}
IMAGE_UPSCALERS = {"Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST, "None": Image.LANCZOS}
UPSCALERS = [*LATENT_UPSCALERS, *IMAGE_UPSCALERS]


def check(request: GenerationRequest) -> None:
    """Raise ValueError (the request model turns it into a field error) for an unusable setting."""
    from kekong.generation.samplers import SAMPLER_NAMES, SCHEDULE_TYPES, split_sampler_name

    if request.init_image is not None:
        raise ValueError("hires fix is for txt2img; img2img already starts from an image")
    if request.hr_upscaler not in UPSCALERS and learned(request.hr_upscaler) is None:
        from kekong.models import esrgan

        raise ValueError(f"hires upscaler {request.hr_upscaler!r} is not available; use one of: "
                         f"{', '.join([*UPSCALERS, *esrgan.available()])} (ESRGAN-family .pth/.safetensors files go "
                         f"in the models folder's ESRGAN/; SwinIR, LDSR and ScuNET are not supported)")
    if request.hr_sampler_name:
        sampler, schedule = split_sampler_name(request.hr_sampler_name, request.hr_scheduler or "Automatic")
        if sampler not in SAMPLER_NAMES:
            raise ValueError(f"unknown hires sampler {request.hr_sampler_name!r}")
        if schedule not in SCHEDULE_TYPES:
            raise ValueError(f"unknown hires schedule type {request.hr_scheduler!r}")


# A1111's names for the Real-ESRGAN models it downloads → their file names
BUILTIN_LEARNED = {"R-ESRGAN 4x+": "RealESRGAN_x4plus", "R-ESRGAN 4x+ Anime6B": "RealESRGAN_x4plus_anime_6B"}


def learned(name: str):
    """The weights file of a learned upscaler by its A1111 name, or None."""
    from kekong.models import esrgan

    return esrgan.find(BUILTIN_LEARNED.get(name, name))


def target_size(request: GenerationRequest) -> tuple[int, int]:
    """(height, width) of the second pass: hr_resize_x/y when given (one of them keeps the aspect
    ratio), else the first pass × hr_scale; multiples of 8."""
    width, height = request.width, request.height
    if request.hr_resize_x or request.hr_resize_y:
        new_w = request.hr_resize_x or request.hr_resize_y * width / height
        new_h = request.hr_resize_y or request.hr_resize_x * height / width
    else:
        new_w, new_h = width * request.hr_scale, height * request.hr_scale
    return max(64, int(new_h) // 8 * 8), max(64, int(new_w) // 8 * 8)


def second_pass(request: GenerationRequest) -> GenerationRequest:
    """The second pass as a request of its own (its size, steps, sampler and prompts)."""
    from kekong.generation.samplers import split_sampler_name

    height, width = target_size(request)
    sampler, schedule = request.sampler, request.scheduler
    if request.hr_sampler_name:
        sampler, schedule = split_sampler_name(request.hr_sampler_name, request.hr_scheduler or "Automatic")
    elif request.hr_scheduler:
        schedule = request.hr_scheduler
    return request.model_copy(update={
        "width": width, "height": height, "steps": request.hr_second_pass_steps or request.steps,
        "sampler": sampler, "scheduler": schedule, "prompt": request.hr_prompt or request.prompt,
        "negative_prompt": request.hr_negative_prompt or request.negative_prompt,
        "seed_resize_from_w": 0, "seed_resize_from_h": 0})


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
        from kekong.models import esrgan

        model = esrgan.load(path)
        for index, image in enumerate(images):  # ×4 until at least the target, as A1111 does
            while image.shape[0] < size_hw[0] or image.shape[1] < size_hw[1]:
                image = esrgan.upscale(model, image)
            images[index] = image
    resample = IMAGE_UPSCALERS.get(upscaler, Image.LANCZOS)
    images = [np.asarray(Image.fromarray(image).resize((size_hw[1], size_hw[0]), resample)) for image in images]
    return torch.cat([encode(image) for image in images])

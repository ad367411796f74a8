"""A1111's "Extras" upscale: an image made larger by a built-in resampler (Lanczos, Nearest) or a
learned ESRGAN-family upscaler, optionally blended with a second one — no diffusion.

The output size is derived from the request (scale, or a target width/height with optional crop)
and bounded by the decoded-pixel cap before anything is allocated.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from kekong.errors import ParameterError
from kekong.io import max_pixels

RESAMPLERS = {"Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST}


def output_size(height: int, width: int, scale: float = 2.0, target: tuple[int, int] | None = None,
                crop: bool = True) -> tuple[int, int]:
    """(height, width) of the result: `scale` × the input, or `target` (width, height) — as A1111,
    `crop` keeps the aspect ratio by scaling to cover the target and cutting the rest."""
    if target is not None:
        out_w, out_h = target
        if out_w < 1 or out_h < 1:
            raise ParameterError(f"upscaling_resize_w/h: {out_w}x{out_h} is not a size")
    else:
        if not 0 < scale <= 8:
            raise ParameterError(f"upscaling_resize: {scale} is outside 0–8")
        out_w, out_h = round(width * scale), round(height * scale)
    if out_w * out_h > max_pixels():
        raise ParameterError(f"the upscaled image would be {out_w}x{out_h} = {out_w * out_h:,} pixels, over this "
                             f"server's {max_pixels():,} (KEKONG_MAX_PIXELS)")
    return out_h, out_w


def check_upscaler(name: str, field: str = "upscaler_1") -> None:
    from kekong.generation.hires import learned

    if name not in ("None", *RESAMPLERS) and learned(name) is None:
        from kekong.models import esrgan

        raise ParameterError(f"{field}: {name!r} is not available; use one of: "
                             f"{', '.join(['None', *RESAMPLERS, *esrgan.available()])}")


def upscale_image(image: np.ndarray, size_hw: tuple[int, int], upscaler: str = "Lanczos", crop: bool = True,
                  second: str = "None", second_visibility: float = 0.0) -> np.ndarray:
    """`image` (H×W×3 uint8) at `size_hw` by `upscaler`, blended with `second` at `second_visibility`."""
    check_upscaler(upscaler)
    result = _one(image, size_hw, upscaler, crop)
    if second != "None" and second_visibility > 0:
        check_upscaler(second, "upscaler_2")
        other = _one(image, size_hw, second, crop)
        result = (result * (1 - second_visibility) + other * second_visibility).round().astype(np.uint8)
    return result


def _one(image: np.ndarray, size_hw: tuple[int, int], upscaler: str, crop: bool) -> np.ndarray:
    height, width = size_hw
    if upscaler not in ("None", *RESAMPLERS):
        from kekong.generation.hires import learned
        from kekong.models import esrgan

        image = esrgan.upscale_to(esrgan.load(learned(upscaler)), image, size_hw, max_pixels())
    resample = RESAMPLERS.get(upscaler, Image.LANCZOS)
    picture = Image.fromarray(image)
    if crop and abs(picture.width / picture.height - width / height) > 1e-6:
        cover = max(width / picture.width, height / picture.height)
        picture = picture.resize((max(width, round(picture.width * cover)), max(height, round(picture.height * cover))),
                                 resample)
        left, top = (picture.width - width) // 2, (picture.height - height) // 2
        return np.asarray(picture.crop((left, top, left + width, top + height)))
    return np.asarray(picture.resize((width, height), resample))

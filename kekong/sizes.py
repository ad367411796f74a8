"""Every size a request derives, computed and bounded in one place, before anything is allocated.

A request declares a few sizes (width, height, hr_resize_x/y, seed_resize_from_w/h, processor
resolution); the work derives others from them: the hires second pass, a detector's working image
(the short side scaled to the processor resolution, so the long side follows the aspect ratio), a
pose map's canvas. Each derived size is refused here, with the field that produced it, when it would
exceed the same bound the declared sizes have. A leaf module: the request model, generation and the
detectors all use it, so it imports nothing from them.
"""

from __future__ import annotations

from kekong.choices import MAX_SIDE  # a generation side, either pass (the request's width/height bound)
from kekong.errors import ParameterError

MAX_WORK_SIDE = 8192  # a detector's working image, long side (its short side is the processor resolution)
MAX_CANVAS_SIDE = 4096  # a pose map rendered from JSON (twice the largest generation side)


def hires_size(width: int, height: int, hr_scale: float, hr_resize_x: int = 0, hr_resize_y: int = 0) \
        -> tuple[int, int]:
    """(height, width) of the hires second pass, as A1111 derives it: hr_resize_x/y when given (a
    side left 0 keeps the first pass's aspect ratio), else the first pass × hr_scale; multiples of 8."""
    if hr_resize_x or hr_resize_y:
        new_w = hr_resize_x or hr_resize_y * width / height
        new_h = hr_resize_y or hr_resize_x * height / width
    else:
        new_w, new_h = width * hr_scale, height * hr_scale
    return max(64, int(new_h) // 8 * 8), max(64, int(new_w) // 8 * 8)


def hires_field(hr_resize_x: int, hr_resize_y: int) -> str:
    """The request field a second-pass size comes from (what an error names)."""
    if hr_resize_x and hr_resize_y:
        return "hr_resize_x/hr_resize_y"
    if hr_resize_x or hr_resize_y:
        return "hr_resize_x" if hr_resize_x else "hr_resize_y"
    return "hr_scale"


def check_hires(width: int, height: int, hr_scale: float, hr_resize_x: int = 0, hr_resize_y: int = 0,
                max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The second pass's (height, width), refused by the field that makes it when a side is over `max_side`."""
    size_h, size_w = hires_size(width, height, hr_scale, hr_resize_x, hr_resize_y)
    if max(size_h, size_w) > max_side:
        field = hires_field(hr_resize_x, hr_resize_y)
        how = f"{width}x{height} × {hr_scale:g}" if field == "hr_scale" else \
            f"{field} with a {width}x{height} first pass (the other side keeps its aspect ratio)"
        raise ParameterError(f"{field}: {how} makes a {size_w}x{size_h} hires pass, over {max_side} px per side")
    return size_h, size_w


def check_side(field: str, value: int | None, max_side: int = MAX_SIDE) -> None:
    if value is not None and value > max_side:
        raise ParameterError(f"{field}: {value} is over {max_side} px")


def check_batch(batch_size: int, height: int, width: int, max_side: int, max_batch: int, what: str = "") -> None:
    """Images denoised together × their pixels, against `max_batch` of the largest images."""
    if batch_size * height * width > max_batch * max_side * max_side:
        raise ParameterError(f"batch_size: {batch_size} images of {width}x{height}{what} are "
                             f"{batch_size * height * width:,} pixels at once, over "
                             f"{max_batch * max_side * max_side:,} ({max_batch} of {max_side}x{max_side})")


def detector_work_size(image_hw: tuple[int, int], resolution: int) -> tuple[int, int]:
    """(height, width) a detector works at: the short side scaled to `resolution`, before padding."""
    height, width = image_hw
    scale = resolution / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def check_detector_work(image_hw: tuple[int, int], resolution: int, field: str = "res") -> tuple[int, int]:
    """The working size, refused when its long side would pass MAX_WORK_SIDE (an extreme aspect ratio)."""
    work_h, work_w = detector_work_size(image_hw, resolution)
    if max(work_h, work_w) > MAX_WORK_SIDE:
        height, width = image_hw
        ratio = MAX_WORK_SIDE // resolution
        raise ParameterError(
            f"{field}: processor resolution {resolution} on a {width}x{height} image makes a {work_w}x{work_h} "
            f"working image, over "
            f"{MAX_WORK_SIDE} px on the long side; lower the resolution or use an image of aspect ratio "
            f"at most {ratio}:1")
    return work_h, work_w


def check_canvas(width: int, height: int, field: str = "canvas_width/canvas_height") -> None:
    """A canvas to draw on: 1..MAX_CANVAS_SIDE px per side."""
    if min(width, height) < 1 or max(width, height) > MAX_CANVAS_SIDE:
        raise ParameterError(f"{field}: a {width}x{height} canvas is outside 1..{MAX_CANVAS_SIDE} px per side")

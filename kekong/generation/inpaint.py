"""Preparing img2img/inpaint inputs as A1111 does: mask blur, "only masked" crops with padding,
masked-content fill, and pasting the result back through the blurred mask."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kekong.detect.inpaint import feather_mask, mask_from_image
from kekong.errors import ParameterError


@dataclass
class InpaintInputs:
    image: np.ndarray  # uint8 HxWx3 at the generation size (filled where asked)
    mask: np.ndarray  # uint8 HxW at the generation size, blurred; 255 = repaint
    original: np.ndarray  # what the result is pasted into (full size when only masked)
    full_mask: np.ndarray  # blurred mask at the original's size (paste alpha)
    crop: tuple[int, int, int, int] | None  # x0, y0, x1, y1 of the "only masked" region
    unit_mask: np.ndarray | None = None  # unblurred, at the init image's size (what inpaint_only units read)


def fit_init(image: np.ndarray, size_hw: tuple[int, int], mode) -> np.ndarray:
    """The init image at the generation size, as A1111's img2img `resize_mode` fits it: just resize
    (stretch), crop and resize (cover, centre crop), or resize and fill (fit inside, then the edge
    rows and columns stretched over the empty bands)."""
    from kekong.detect.resolution import ResizeMode

    height, width = image.shape[:2]
    th, tw = size_hw
    if mode == ResizeMode.JUST_RESIZE:
        return cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    scale = max(th / height, tw / width) if mode == ResizeMode.CROP_AND_RESIZE else min(th / height, tw / width)
    nh, nw = max(1, round(height * scale)), max(1, round(width * scale))
    scaled = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4)
    if mode == ResizeMode.CROP_AND_RESIZE:
        top, left = (nh - th) // 2, (nw - tw) // 2
        return np.ascontiguousarray(scaled[max(top, 0):max(top, 0) + th, max(left, 0):max(left, 0) + tw])
    top, left = (th - nh) // 2, (tw - nw) // 2
    padding = [(top, th - nh - top), (left, tw - nw - left)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(scaled, padding, mode="edge")


def prepare(original: np.ndarray, mask_image: np.ndarray, size_hw: tuple[int, int], *, invert: bool,
            blur: int, only_masked: bool, padding: int, fill: bool) -> InpaintInputs:
    mask = mask_from_image(mask_image)
    if mask.shape != original.shape[:2]:
        mask = cv2.resize(mask, (original.shape[1], original.shape[0]), interpolation=cv2.INTER_NEAREST)
    if invert:
        mask = 255 - mask
    if not mask.any():
        raise ParameterError("the inpaint mask is empty: nothing to repaint (white = repaint)")
    blurred = feather_mask(mask, blur)
    crop = None
    image, work_mask = original, blurred
    if only_masked:
        crop = masked_region(mask, padding, size_hw)
        x0, y0, x1, y1 = crop
        image, work_mask = original[y0:y1, x0:x1], blurred[y0:y1, x0:x1]
    h, w = size_hw
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LANCZOS4 if image.shape[0] < h else cv2.INTER_AREA)
    work_mask = cv2.resize(work_mask, (w, h), interpolation=cv2.INTER_LINEAR)
    if crop is None:  # whole picture: the result is the generation size, as in A1111
        original, blurred = image, work_mask
    if fill:
        image = fill_masked(image, work_mask)
    return InpaintInputs(image, work_mask, original, blurred, crop, unit_mask=mask)


def masked_region(mask: np.ndarray, padding: int, size_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Bounding box of the mask plus padding, grown to the generation aspect ratio, inside the image."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    x0, y0 = max(0, xs.min() - padding), max(0, ys.min() - padding)
    x1, y1 = min(width, xs.max() + 1 + padding), min(height, ys.max() + 1 + padding)
    target = size_hw[1] / size_hw[0]
    box_w, box_h = x1 - x0, y1 - y0
    if box_w / box_h < target:  # too narrow: widen
        grow = round(box_h * target) - box_w
        x0, x1 = _grow(x0, x1, grow, width)
    else:
        grow = round(box_w / target) - box_h
        y0, y1 = _grow(y0, y1, grow, height)
    return int(x0), int(y0), int(x1), int(y1)


def _grow(low: int, high: int, amount: int, limit: int) -> tuple[int, int]:
    low -= amount // 2
    high += amount - amount // 2
    if low < 0:
        high, low = min(limit, high - low), 0
    if high > limit:
        low, high = max(0, low - (high - limit)), limit
    return low, high


def fill_masked(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A1111's "fill": the masked area takes the colours around it (Telea inpainting)."""
    hard = np.where(mask > 0, 255, 0).astype(np.uint8)
    return cv2.inpaint(image, hard, 5, cv2.INPAINT_TELEA)


def paste(result: np.ndarray, inputs: InpaintInputs) -> np.ndarray:
    """The generated pixels over the original, through the blurred mask (outside stays untouched)."""
    original = inputs.original
    if inputs.crop is None:
        placed = result
    else:
        x0, y0, x1, y1 = inputs.crop
        placed = original.copy()
        placed[y0:y1, x0:x1] = cv2.resize(result, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LANCZOS4)
    alpha = inputs.full_mask.astype(np.float32)[:, :, None] / 255.0
    out = original.astype(np.float32) * (1 - alpha) + placed.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)

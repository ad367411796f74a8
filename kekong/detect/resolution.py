"""One implementation of resolution handling, shared by every detector and (later) generation.

Terms follow sd-webui-controlnet:
- processor resolution: detectors run on the image scaled so its short side is `res`
  (padded to a multiple of 64 for the learned networks, then un-padded);
- pixel perfect: `res` computed from the target generation size and the resize mode;
- resize modes: how a control map is fitted to the target size.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from kekong.choices import ResizeMode  # declared in the leaf kekong.choices
from kekong.sizes import check_detector_work


def snap(value: int, multiple: int = 8) -> int:
    """Round a size to the nearest multiple the model needs (8 for SD latents), at least one."""
    return max(multiple, round(value / multiple) * multiple)


def pad64(size: int) -> int:
    """Padding that brings `size` up to a multiple of 64."""
    return int(np.ceil(float(size) / 64.0) * 64 - size)


def pixel_perfect_resolution(
    image_hw: tuple[int, int], target_hw: tuple[int, int], mode: ResizeMode
) -> int:
    """Processor resolution whose output maps one-to-one onto the target pixels."""
    raw_h, raw_w = image_hw
    k_h, k_w = target_hw[0] / raw_h, target_hw[1] / raw_w
    k = min(k_h, k_w) if mode == ResizeMode.RESIZE_AND_FILL else max(k_h, k_w)
    return int(np.round(k * min(raw_h, raw_w)))


def _interpolation(scale: float) -> int:
    return cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA


def resize_short_side(
    image: np.ndarray, resolution: int, pad: bool
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Scale so the short side is `resolution`; optionally edge-pad to multiples of 64.

    Returns the image to process and a function that crops a same-size result back. An image whose
    aspect ratio would make the long side pass MAX_WORK_SIDE is refused before anything is allocated.
    """
    h, w = image.shape[:2]
    k = resolution / min(h, w)
    th, tw = check_detector_work((h, w), resolution)
    resized = image if (th, tw) == (h, w) else cv2.resize(
        image, (tw, th), interpolation=_interpolation(k))
    if not pad:
        return resized, lambda result: result
    padding = [[0, pad64(th)], [0, pad64(tw)]] + [[0, 0]] * (image.ndim - 2)
    padded = np.pad(resized, padding, mode="edge")

    def remove_pad(result: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(result[:th, :tw])

    return padded, remove_pad


def _is_binary(array: np.ndarray) -> bool:
    return array.dtype == np.uint8 and bool(np.all((array == 0) | (array == 255)))


def _colour_count(array: np.ndarray) -> int:
    """Distinct colours of a uint8 map (up to 4 channels packed into one uint32: a 1-D unique is
    ~30× faster than np.unique(axis=0) over rows, which took 0.56 s on a 512² map)."""
    pixels = array.reshape(-1, array.shape[2] if array.ndim == 3 else 1)
    if pixels.shape[1] > 4:
        return len(np.unique(pixels, axis=0))
    packed = np.zeros(len(pixels), np.uint32)
    for index in range(pixels.shape[1]):
        packed = (packed << np.uint32(8)) | pixels[:, index]
    return int(np.unique(packed).size)


def resize_map(array: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a control map without ruining it: binary maps stay binary, colour-coded maps
    (segmentation, few colours) use nearest neighbour, float maps keep exact values."""
    h, w = array.shape[:2]
    th, tw = size_hw
    if (h, w) == (th, tw):
        return array
    k = min(th / h, tw / w)
    if array.dtype != np.uint8:
        return cv2.resize(array, (tw, th), interpolation=cv2.INTER_NEAREST)
    if _is_binary(array):
        out = cv2.resize(array, (tw, th), interpolation=_interpolation(k))
        return np.where(out > 127, 255, 0).astype(np.uint8)
    interpolation = cv2.INTER_NEAREST if _colour_count(array) <= 32 else _interpolation(k)
    out = cv2.resize(array, (tw, th), interpolation=interpolation)
    return out.reshape((th, tw, *array.shape[2:]))


def fit_geometry(size_hw: tuple[int, int], target_hw: tuple[int, int],
                 mode: ResizeMode | str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a map of `size_hw` goes on a `target_hw` canvas under a resize mode: its scaled size
    and the canvas position of its top-left corner (negative when Crop and Resize cuts it)."""
    mode = ResizeMode.parse(mode)
    h, w = size_hw
    th, tw = target_hw
    if mode == ResizeMode.JUST_RESIZE:
        return (th, tw), (0, 0)
    if mode == ResizeMode.CROP_AND_RESIZE:
        k = max(th / h, tw / w)
        nh, nw = max(th, int(np.round(h * k))), max(tw, int(np.round(w * k)))
        return (nh, nw), (-((nh - th) // 2), -((nw - tw) // 2))
    k = min(th / h, tw / w)  # Resize and Fill: fit inside, bands around
    nh, nw = min(th, int(np.round(h * k))), min(tw, int(np.round(w * k)))
    return (nh, nw), ((th - nh) // 2, (tw - nw) // 2)


def fit_to_target(array: np.ndarray, size_hw: tuple[int, int], mode: ResizeMode) -> np.ndarray:
    """Fit a control map (or image) to the generation size with a resize mode: exactly `size_hw`."""
    mode = ResizeMode.parse(mode)
    th, tw = size_hw
    (nh, nw), (top, left) = fit_geometry(array.shape[:2], size_hw, mode)
    scaled = resize_map(array, (nh, nw))
    if mode == ResizeMode.JUST_RESIZE:
        return scaled
    if mode == ResizeMode.CROP_AND_RESIZE:
        return np.ascontiguousarray(scaled[-top:-top + th, -left:-left + tw])
    # Resize and fill: pad with the median border colour.
    flat = scaled.reshape(nh, nw, -1)
    borders = np.concatenate([flat[0], flat[-1], flat[:, 0], flat[:, -1]], axis=0)
    colour = np.median(borders, axis=0).astype(array.dtype)
    canvas = np.empty((th, tw, flat.shape[2]), dtype=array.dtype)
    canvas[:] = colour
    canvas[top:top + nh, left:left + nw] = flat
    return canvas.reshape((th, tw, *array.shape[2:]))

"""Maps that re-arrange the picture itself: content shuffle, tile, blur, colour grid."""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.registry import Param, detector


@detector(
    "reference_only", "Reference-only: the picture itself, which the UNet attends to while drawing (no "
    "ControlNet model; see generation/reference.py).",
    params=(Param("style_fidelity", 0.5, "how strongly the reference's style wins over the prompt (0-1)", 0.0, 1.0),),
    pad64=False, uses_resolution=False,
)
def reference_only(image: np.ndarray, style_fidelity: float = 0.5) -> np.ndarray:
    return image.copy()


@detector(
    "shuffle", "Content shuffle: the picture warped by a smooth random flow field (style and "
    "colours kept, layout scrambled); seeded, so it is reproducible.",
    params=(Param("seed", 0, "random seed of the flow field", 0, 2**32 - 1),
            Param("cell", 256, "size of the flow field's cells in pixels", 16, 1024)),
    feeds=("control_v11e_sd15_shuffle",), pad64=False,
)
def shuffle(image: np.ndarray, seed: int = 0, cell: int = 256) -> np.ndarray:
    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    flow_x = _smooth_noise(rng, h, w, cell) * float(w - 1)
    flow_y = _smooth_noise(rng, h, w, cell) * float(h - 1)
    return cv2.remap(image, flow_x, flow_y, cv2.INTER_LINEAR)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Uniform noise on a coarse grid, upsampled smoothly and stretched to [0, 1]."""
    coarse = rng.uniform(0, 1, size=(h // cell + 2, w // cell + 2)).astype(np.float32)
    noise = cv2.resize(coarse, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)
    noise = noise[cell:cell + h, cell:cell + w]
    noise -= noise.min()
    return noise / max(float(noise.max()), 1e-6)


@detector(
    "tile_resample", "Tile: the picture downsampled by a factor (the tile model adds the detail "
    "back); factor 1 passes the picture through.",
    params=(Param("down_sampling_rate", 1.0, "downsampling factor", 1.0, 8.0),),
    feeds=("control_v11f1e_sd15_tile",), pad64=False,
)
def tile_resample(image: np.ndarray, down_sampling_rate: float = 1.0) -> np.ndarray:
    if down_sampling_rate <= 1.0:
        return image.copy()
    h, w = image.shape[:2]
    size = (max(1, int(w / down_sampling_rate)), max(1, int(h / down_sampling_rate)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@detector(
    "blur_gaussian", "Tile/blur: the picture blurred with a Gaussian of the given sigma.",
    params=(Param("sigma", 9.0, "blur sigma in pixels", 0.01, 64.0),),
    feeds=("control_v11f1e_sd15_tile",), pad64=False,
)
def blur_gaussian(image: np.ndarray, sigma: float = 9.0) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


@detector(
    "t2ia_color_grid", "Colour grid for the T2I-Adapter colour model: 64×64-pixel cells of the "
    "picture's average colour.",
    params=(Param("cell", 64, "cell size in pixels", 4, 256),),
    feeds=("t2iadapter_color_sd14v1",), pad64=False,
)
def t2ia_color_grid(image: np.ndarray, cell: int = 64) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)

"""Inpainting: mask helpers and the control image of the inpaint ControlNet.

Masks are uint8 HxW, 255 = repaint, 0 = keep. The inpaint ControlNet's control image is the
picture scaled to [0, 1] with masked pixels set to −1.0, so it is float32, not uint8.
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.registry import detector
from kekong.errors import ImageError, ParameterError

MASKED = -1.0


def mask_from_alpha(rgba: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Transparent pixels (alpha below threshold) are the area to repaint."""
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ImageError("mask from alpha needs an image with an alpha channel (RGBA)")
    return np.where(rgba[:, :, 3] < threshold, 255, 0).astype(np.uint8)


def mask_from_color(rgb: np.ndarray, color: tuple[int, int, int], tolerance: int = 16) -> np.ndarray:
    """Pixels within `tolerance` (per channel) of `color` are the area to repaint."""
    if not 0 <= tolerance <= 255:
        raise ParameterError(f"mask colour tolerance {tolerance} is outside 0..255")
    distance = np.abs(rgb[:, :, :3].astype(np.int16) - np.array(color, np.int16)).max(axis=2)
    return np.where(distance <= tolerance, 255, 0).astype(np.uint8)


def mask_from_image(image: np.ndarray) -> np.ndarray:
    """A mask drawn as an image: bright pixels (any channel mean above 127) are masked."""
    grey = image if image.ndim == 2 else image[:, :, :3].mean(axis=2)
    return np.where(grey > 127, 255, 0).astype(np.uint8)


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the masked area by `pixels` (negative shrinks it)."""
    if pixels == 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(pixels) + 1,) * 2)
    return cv2.dilate(mask, kernel) if pixels > 0 else cv2.erode(mask, kernel)


def feather_mask(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Soften the mask edge with a Gaussian blur (A1111's "mask blur")."""
    if pixels <= 0:
        return mask.copy()
    return cv2.GaussianBlur(mask, (0, 0), pixels)


@detector(
    "inpaint_only", "Inpaint control image: the picture in [0, 1] with masked pixels = −1.0 "
    "(float32). Needs a mask: from a file, or the image's transparent pixels.",
    feeds=("control_v11p_sd15_inpaint",), takes_mask=True, pad64=False,
)
def inpaint_only(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    control = image.astype(np.float32) / 255.0
    grey = mask if mask.ndim == 2 else mask.mean(axis=2)
    control[grey > 127] = MASKED
    return control


def control_to_rgba(control: np.ndarray) -> np.ndarray:
    """Encode a float inpaint control image as uint8 RGBA (masked = transparent) for saving."""
    masked = np.all(control == MASKED, axis=2)
    rgb = (control.clip(0, 1) * 255 + 0.5).astype(np.uint8)
    alpha = np.where(masked, 0, 255).astype(np.uint8)
    rgb[masked] = 0
    return np.dstack([rgb, alpha])


def control_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """Inverse of control_to_rgba."""
    control = rgba[:, :, :3].astype(np.float32) / 255.0
    control[rgba[:, :, 3] < 128] = MASKED
    return control

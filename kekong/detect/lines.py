"""Straight lines (M-LSD family): OpenCV's line segment detector as the offline stand-in.

The M-LSD ControlNet was trained on 1-pixel white straight segments on black; so are these.
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.registry import Param, detector


@detector(
    "mlsd_lsd", "Straight lines (classical, offline): OpenCV's line segment detector, "
    "short segments dropped, drawn 1 px white on black.",
    params=(Param("min_length", 20.0, "shortest segment kept, in pixels at 512 px", 0.0, 512.0),
            Param("min_contrast", 30.0, "drop weak segments: mean edge contrast, 0–255", 0.0, 255.0)),
    feeds=("control_v11p_sd15_mlsd",), approximates="mlsd", pad64=False,
)
def mlsd_lsd(image: np.ndarray, min_length: float = 20.0, min_contrast: float = 30.0) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = min(image.shape[:2]) / 512
    segments = find_segments(grey, min_length * scale, min_contrast)
    canvas = np.zeros(grey.shape, np.uint8)
    for x1, y1, x2, y2 in segments:
        cv2.line(canvas, (round(x1), round(y1)), (round(x2), round(y2)), 255, 1)
    return canvas


def find_segments(grey: np.ndarray, min_length: float, min_contrast: float) -> np.ndarray:
    """Line segments (N×4: x1, y1, x2, y2) longer than min_length with enough edge contrast."""
    lines = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD).detect(grey)[0]
    if lines is None:
        return np.zeros((0, 4), np.float32)
    lines = lines.reshape(-1, 4)
    lengths = np.hypot(lines[:, 2] - lines[:, 0], lines[:, 3] - lines[:, 1])
    lines = lines[lengths >= min_length]
    if min_contrast <= 0 or len(lines) == 0:
        return lines
    gradient = cv2.morphologyEx(grey, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    keep = [_mean_along(gradient, line) >= min_contrast for line in lines]
    return lines[np.array(keep, bool)]


def _mean_along(values: np.ndarray, line: np.ndarray, samples: int = 16) -> float:
    h, w = values.shape
    t = np.linspace(0, 1, samples)
    xs = np.clip(np.round(line[0] + t * (line[2] - line[0])).astype(int), 0, w - 1)
    ys = np.clip(np.round(line[1] + t * (line[3] - line[1])).astype(int), 0, h - 1)
    return float(values[ys, xs].mean())

"""Colour distance in CIELAB, shared by the shapes dataset and its benchmark, ControlNet training's
background test and the prompt describer's colour names (one definition of "how far apart")."""

from __future__ import annotations

import cv2
import numpy as np


def lab(rgb: tuple[int, int, int] | np.ndarray) -> np.ndarray:
    """sRGB (0–255) → CIELAB (D65), for one colour or an array of them (…, 3)."""
    array = np.asarray(rgb, dtype=np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(array, cv2.COLOR_RGB2LAB).reshape(np.shape(rgb))


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference (Euclidean in CIELAB), over the last axis."""
    return np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=-1)

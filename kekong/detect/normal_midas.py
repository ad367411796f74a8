"""sd-webui-controlnet's normal_midas (ControlNet 1.0's normal map): normals from a MiDaS depth map.

As the extension's annotator computes them: the raw MiDaS depth's horizontal and vertical Sobel
gradients with a constant z = 2π, zeroed where the depth (scaled to [0, 1]) is below the
background threshold, normalised, encoded as 127.5 + 127.5·n and written in reversed channel
order — so flat background is (255, 127, 127). Depth comes from kekong's depth_midas model
(Intel/dpt-hybrid-midas, MiDaS's dpt_hybrid network in transformers), or with `input_is_depth`
from the image itself (its grey levels stand for the depth): no weights needed.
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.depth import DEFAULT_MODELS, estimate_depth
from kekong.detect.registry import Param, detector

MIDAS = DEFAULT_MODELS["depth_midas"]


def midas_normals(depth: np.ndarray, bg_threshold: float = 0.4, a: float = np.pi * 2.0) -> np.ndarray:
    """uint8 HxWx3 normal map from a depth map (larger = nearer), the annotator's formula."""
    depth = depth.astype(np.float32)
    low, span = float(depth.min()), float(depth.max() - depth.min())
    scaled = (depth - low) / span if span > 0 else np.zeros_like(depth)
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    background = scaled < bg_threshold
    x[background] = 0
    y[background] = 0
    normal = np.stack([x, y, np.full_like(x, a)], axis=2)
    normal /= np.sqrt(np.sum(normal**2, axis=2, keepdims=True))
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1].copy()


@detector(
    "normal_midas", "Normals from MiDaS depth (ControlNet 1.0's normal map, sd-webui-controlnet's normal_midas): "
    "Sobel gradients of the depth, background below the threshold flat. With input_is_depth the image is the "
    "depth map and no weights are needed.",
    params=(Param("bg_threshold", 0.4, "depth (0-1) below which the surface counts as flat background", 0.0, 1.0),
            Param("model", MIDAS, "depth model: folder or hub id"),
            Param("input_is_depth", False, "the image already is a depth map (near = white)")),
    feeds=("control_sd15_normal",), needs_weights=MIDAS,
)
def normal_midas(image: np.ndarray, bg_threshold: float = 0.4, model: str = MIDAS,
                 input_is_depth: bool = False) -> np.ndarray:
    if input_is_depth:
        depth = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    else:
        depth = estimate_depth(image, model, "normal_midas")
    return midas_normals(depth, bg_threshold)

"""Depth (MiDaS / DPT / Depth-Anything through transformers) and surface normals from depth.

Depth maps are relative inverse depth scaled to 0–255: near is white, far is black, as
ControlNet's depth model (control_v11f1p_sd15_depth) was trained on. Normals use normalbae's
colour convention (blue = facing the viewer, red = facing left, green = facing up).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from kekong.detect.registry import Param, detector
from kekong.models.weights import find_pretrained

DEPTH_MODELS = ("control_v11f1p_sd15_depth", "diffusers/controlnet-depth-sdxl-1.0")
# What a depth detector without its weights offers instead: every depth detector needs some weights.
NO_OFFLINE_DEPTH = "none for depth (depth_midas and depth_anything need a Hugging Face model instead of this file)"
DEFAULT_MODELS = {
    "depth_midas": "Intel/dpt-hybrid-midas",
    "depth_dpt": "Intel/dpt-large",
    "depth_anything": "LiheYoung/depth-anything-small-hf",
    "depth_anything_v2": "depth-anything/Depth-Anything-V2-Small-hf",
}


@lru_cache(maxsize=2)
def _load(folder: str) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    from kekong.models.load import quiet_loading

    quiet_loading()  # no progress bars, no transformers warnings

    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True).eval()
    return processor, model


def estimate_depth(image: np.ndarray, model: str, detector_name: str = "depth") -> np.ndarray:
    """Relative inverse depth (float32 HxW, larger = nearer) at the image's size."""
    import torch

    processor, net = _load(find_pretrained(model, detector_name, stand_in="none for depth"))
    inputs = processor(images=image, return_tensors="pt")
    with torch.inference_mode():
        predicted = net(**inputs).predicted_depth  # (1, h', w')
    predicted = torch.nn.functional.interpolate(
        predicted[:, None], size=image.shape[:2], mode="bicubic", align_corners=False)
    return predicted[0, 0].float().numpy()


def depth_to_uint8(depth: np.ndarray) -> np.ndarray:
    """Min–max normalise to 0–255 (near = white)."""
    low, high = float(depth.min()), float(depth.max())
    scaled = (depth - low) / max(high - low, 1e-6)
    return (scaled * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def _depth_detector(name: str) -> None:
    @detector(
        name, f"Depth from {DEFAULT_MODELS[name]} (transformers), near = white.",
        params=(Param("model", DEFAULT_MODELS[name], "local folder or hub id of the model"),),
        feeds=DEPTH_MODELS, needs_weights=DEFAULT_MODELS[name],
    )
    def run(image: np.ndarray, model: str = DEFAULT_MODELS[name]) -> np.ndarray:
        return depth_to_uint8(estimate_depth(image, model, name))


for _name in DEFAULT_MODELS:
    _depth_detector(_name)


def normals_from_depth(depth: np.ndarray, strength: float = 4.0) -> np.ndarray:
    """Surface normals (uint8 RGB, normalbae convention) from a depth map (larger = nearer).

    The depth is a height field z(x, y) toward the viewer; its normal is (−∂z/∂x, ∂z/∂row, 1)
    in (right, up, toward viewer) axes, encoded R = facing left, G = facing up, B = facing us.
    """
    z = depth.astype(np.float32)
    z = (z - z.min()) / max(float(z.max() - z.min()), 1e-6) * strength
    z = cv2.GaussianBlur(z, (0, 0), 1.0)
    dz_dx = cv2.Sobel(z, cv2.CV_32F, 1, 0, ksize=3) / 8.0 * z.shape[1] / 64
    dz_drow = cv2.Sobel(z, cv2.CV_32F, 0, 1, ksize=3) / 8.0 * z.shape[0] / 64
    right, up, front = -dz_dx, dz_drow, np.ones_like(z)
    norm = np.sqrt(right**2 + up**2 + front**2)
    rgb = np.stack([-right / norm, up / norm, front / norm], axis=2)  # left, up, front
    return ((rgb + 1.0) * 0.5 * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


@detector(
    "normal_from_depth", "Surface normals derived from depth, in normalbae's colours (blue = "
    "front, red = left, green = top). Feeds control_v11p_sd15_normalbae (smoother than NormalBAE "
    "itself). With input_is_depth the image is taken as a depth map and no weights are needed.",
    params=(Param("model", DEFAULT_MODELS["depth_midas"], "depth model: folder or hub id"),
            Param("strength", 4.0, "depth relief: larger tilts normals more", 0.1, 64.0),
            Param("input_is_depth", False, "the image already is a depth map (near = white)")),
    feeds=("control_v11p_sd15_normalbae",), needs_weights=DEFAULT_MODELS["depth_midas"], approximates="normal_bae",
)
def normal_from_depth(image: np.ndarray, model: str = DEFAULT_MODELS["depth_midas"],
                      strength: float = 4.0, input_is_depth: bool = False) -> np.ndarray:
    if input_is_depth:
        depth = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    else:
        depth = estimate_depth(image, model, "normal_from_depth")
    return normals_from_depth(depth, strength)

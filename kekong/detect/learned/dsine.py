"""`normal_dsine`: DSINE surface normals (`dsine.pt`, bdsqlsz/qinglong_controlnet-lllite `Annotators/`)
with the extension's processing: the processor image edge-padded to multiples of 64, RGB / 255
ImageNet-normalised; intrinsics from `Fov` (the focal length puts the field of view across the
longer side; principal point at the centre, shifted by the centring pad to multiples of 32 the
annotator computes), `Iterations` refinements, the last full-resolution output cropped at that pad's
offset and coloured as the extension does: (n + 1) / 2 → 0–255 per channel (DSINE's axes: x right,
y down, z towards the camera… as the network gives them, no flip).

The extension computes the intrinsics and that crop from the size of the image it was handed, before
its own resize to the processor resolution; kekong computes them for the processor image the network
sees. The two agree whenever the given image is at the processor resolution; for other sizes the
extension's principal point lands off-centre (a 1024² image at 512: in the corner) and an upscaled
image's map is cropped to its original size, which kekong does not copy.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch

from kekong.detect.learned import WEIGHTS_PARAM
from kekong.detect.learned.dsine_net import DSINE, DSINE_B5, DsineConfig
from kekong.detect.learned.strict import load_strictly, strip_prefix, unwrap
from kekong.detect.registry import Param, detector
from kekong.models.weights import find_annotator, load_state_dict

DSINE_FILE, DSINE_REPO = "Annotators/dsine.pt", "bdsqlsz/qinglong_controlnet-lllite"  # a path in the repo
CONFIG: DsineConfig = DSINE_B5  # the tests build tiny networks of the same layout
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def pad_input(height: int, width: int) -> tuple[int, int, int, int]:
    """DSINE's `pad_input`: left, right, top, bottom pads centring the image in multiples of 32."""

    def split(side: int) -> tuple[int, int]:
        if side % 32 == 0:
            return 0, 0
        extra = 32 * (side // 32 + 1) - side
        return extra // 2, extra - extra // 2

    (left, right), (top, bottom) = split(width), split(height)
    return left, right, top, bottom


def intrinsics_from_fov(fov: float, height: int, width: int) -> torch.Tensor:
    """3×3: focal so that `fov` degrees span the longer side, principal point at the centre (top-left pixel 0)."""
    focal = (max(width, height) / 2.0) / np.tan(np.deg2rad(fov / 2.0))
    return torch.tensor([[focal, 0, width / 2.0 - 0.5], [0, focal, height / 2.0 - 0.5], [0, 0, 1]], dtype=torch.float32)


@lru_cache(maxsize=2)
def _dsine(path: str, stamp: int, config: DsineConfig) -> DSINE:
    state = unwrap(load_state_dict(path))
    network = DSINE(config)
    load_strictly(network, strip_prefix(state, "module."), path, "DSINE (EfficientNet-B5)")
    return network.eval()


def normals(network: DSINE, image: np.ndarray, fov: float, iterations: int) -> np.ndarray:
    """The annotator's float map in [−1, 1] (H×W×3) of an RGB uint8 image."""
    height, width = image.shape[:2]
    left, _, top, _ = pad_input(height, width)
    padded = np.pad(image, [[0, -height % 64], [0, -width % 64], [0, 0]], mode="edge")
    x = torch.from_numpy((padded.astype(np.float32) / 255.0 - MEAN) / STD).permute(2, 0, 1)[None]
    intrins = intrinsics_from_fov(fov, height, width)[None]
    intrins[:, 0, 2] += left
    intrins[:, 1, 2] += top
    with torch.inference_mode():
        normal = network(x, intrins, num_iter=iterations)[-1]
    return normal[0, :, top : top + height, left : left + width].permute(1, 2, 0).numpy()


@detector(
    "normal_dsine",
    "DSINE surface normals (learned; dsine.pt), the extension's colours ((n + 1) / 2); "
    "Fov sets the camera, Iterations the refinement steps.",
    params=(
        Param("fov", 60.0, "Fov: the camera's field of view across the longer side, degrees", 0.0, 360.0),
        Param("iterations", 5, "Iterations: refinement steps", 1, 20),
        WEIGHTS_PARAM,
    ),
    feeds=("control_v11p_sd15_normalbae",),
    needs_weights=DSINE_FILE,
    pad64=False,
)
def normal_dsine(image: np.ndarray, fov: float = 60.0, iterations: int = 5, weights: str = "") -> np.ndarray:
    path = str(
        find_annotator(
            DSINE_FILE,
            "normal_dsine",
            explicit=weights or None,
            repo=DSINE_REPO,
            stand_in="normal_midas (input_is_depth=true)",
        )
    )
    network = _dsine(path, os.stat(path).st_mtime_ns, CONFIG)
    normal = ((normals(network, image, fov, iterations) + 1) * 0.5).clip(0, 1)
    return (normal * 255.0).clip(0, 255).astype(np.uint8)

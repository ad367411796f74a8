"""DensePose (`densepose`, `densepose_parula`) as sd-webui-controlnet runs `densepose_r50_fpn_dl.torchscript`
(LayerNorm/DensePose-TorchScript-with-hint-image: detectron2's R50-FPN DensePose with the DeepLab head,
exported to TorchScript with its own person detector, resizing and score threshold inside).

The file is loaded with torch.jit.load (on CPU; detectron2's two torchvision operators come from
torchvision_ops.py). It takes the processor-resolution image, edge-padded to multiples of 64, as a
(3, H, W) uint8 RGB tensor, and returns per person its box (x1, y1, x2, y2), coarse segmentation (2
channels: background/person), fine segmentation (25: background + 24 body parts) and U, V. As the
extension's visualiser does, each box (its corners truncated to whole pixels) gets its labels: the
fine segmentation's arg-max where the coarse one says person, both resized bilinearly to the box; a
labelled pixel is painted with OpenCV's colour map of label × 255 / 24 (viridis for `densepose`,
parula for `densepose_parula`), later people over earlier ones, on black. `densepose` then turns every
0 channel to viridis' lowest colour (68, 1, 84) channel by channel — its purple background.
"""

from __future__ import annotations

import os
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from kekong.detect.learned import WEIGHTS_PARAM
from kekong.detect.learned.torchvision_ops import register
from kekong.detect.registry import detector
from kekong.errors import KekongError
from kekong.models.weights import find_annotator

REPO, FILE = "LayerNorm/DensePose-TorchScript-with-hint-image", "densepose_r50_fpn_dl.torchscript"
PART_LABELS = 24
VIRIDIS_FLOOR = (68, 1, 84)  # viridis at 0, RGB
FEEDS: tuple[str, ...] = ()  # no ControlNet 1.1 model reads DensePose maps: a unit names its model


def _load(path: str) -> torch.jit.ScriptModule:
    stat = os.stat(path)
    return _load_cached(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _load_cached(path: str, mtime_ns: int, size: int) -> torch.jit.ScriptModule:
    register()
    try:
        return torch.jit.load(path, map_location="cpu").eval()
    except (RuntimeError, ValueError, OSError) as exc:
        raise KekongError(f"{path}: not a TorchScript DensePose model ({str(exc).strip().splitlines()[0][:200]})") \
            from None


def _outputs(path: str, result: object) -> tuple[torch.Tensor, ...]:
    """The five tensors the extension unpacks, checked: boxes (N, 4), coarse (N, 2, S, S), fine, U, V
    (N, 25, S, S)."""
    if not isinstance(result, (tuple, list)) or len(result) != 5 or not all(isinstance(t, torch.Tensor)
                                                                            for t in result):
        raise KekongError(f"{path}: the model returned {type(result).__name__}, not the 5 tensors (boxes, coarse "
                          "and fine segmentation, U, V) a DensePose TorchScript file returns")
    boxes, coarse, fine, u, v = result
    n = boxes.shape[0]
    shapes = [tuple(t.shape) for t in result]
    ok = (boxes.shape == (n, 4) and coarse.ndim == 4 and coarse.shape[:2] == (n, 2)
          and all(t.ndim == 4 and t.shape[:2] == (n, PART_LABELS + 1) for t in (fine, u, v)))
    if not ok:
        raise KekongError(f"{path}: the model's outputs have shapes {shapes}, not boxes (N, 4), coarse "
                          f"segmentation (N, 2, S, S) and fine segmentation, U, V (N, {PART_LABELS + 1}, S, S)")
    return boxes, coarse, fine, u, v


def part_labels(coarse: torch.Tensor, fine: torch.Tensor, w: int, h: int) -> np.ndarray:
    """(h, w) body-part labels of one box: fine arg-max where the coarse arg-max is not background."""
    size = (max(h, 1), max(w, 1))
    person = F.interpolate(coarse[None].float(), size, mode="bilinear", align_corners=False).argmax(1) > 0
    parts = F.interpolate(fine[None].float(), size, mode="bilinear", align_corners=False).argmax(1)
    return (parts * person)[0].numpy().astype(np.uint8)


def paint(height: int, width: int, boxes: torch.Tensor, coarse: torch.Tensor, fine: torch.Tensor,
          colour_map: int) -> np.ndarray:
    """The people's part labels in `colour_map` on a black BGR canvas."""
    canvas = np.zeros((height, width, 3), np.uint8)
    for box, person_coarse, person_fine in zip(boxes, coarse, fine, strict=True):
        x1, y1, x2, y2 = box.tolist()
        x, y, w, h = int(x1), int(y1), int(x2 - x1), int(y2 - y1)  # the extension's make_int_box
        if w <= 0 or h <= 0:
            continue
        labels = part_labels(person_coarse, person_fine, w, h)
        colours = cv2.applyColorMap((labels.astype(np.float32) * (255.0 / PART_LABELS)).clip(0, 255)
                                    .astype(np.uint8), colour_map)
        top, left = max(y, 0), max(x, 0)  # the part of the box on the canvas
        bottom, right = min(y + h, height), min(x + w, width)
        if bottom <= top or right <= left:
            continue
        inside = np.s_[top - y:bottom - y, left - x:right - x]
        region = canvas[top:bottom, left:right]
        on = labels[inside] > 0
        region[on] = colours[inside][on]
    return canvas


def densepose_map(image: np.ndarray, weights: str, who: str, viridis: bool) -> np.ndarray:
    path = str(find_annotator(FILE, who, explicit=weights or None, repo=REPO))
    model = _load(path)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    try:
        with torch.inference_mode():
            result = model(tensor)
    except RuntimeError as exc:
        raise KekongError(f"{path}: the DensePose model failed on the image "
                          f"({str(exc).strip().splitlines()[0][:200]})") from None
    boxes, coarse, fine, _, _ = _outputs(path, result)
    bgr = paint(image.shape[0], image.shape[1], boxes.float(), coarse, fine,
                cv2.COLORMAP_VIRIDIS if viridis else cv2.COLORMAP_PARULA)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if viridis:
        for channel, floor in enumerate(VIRIDIS_FLOOR):
            plane = rgb[:, :, channel]
            plane[plane == 0] = floor
    return rgb


@detector("densepose", "DensePose body parts in viridis on viridis' purple (learned; "
          "densepose_r50_fpn_dl.torchscript via torch.jit).", params=(WEIGHTS_PARAM,), feeds=FEEDS,
          needs_weights=FILE)
def densepose(image: np.ndarray, weights: str = "") -> np.ndarray:
    return densepose_map(image, weights, "densepose", viridis=True)


@detector("densepose_parula", "DensePose body parts in parula on black (learned; "
          "densepose_r50_fpn_dl.torchscript via torch.jit).", params=(WEIGHTS_PARAM,), feeds=FEEDS,
          needs_weights=FILE)
def densepose_parula(image: np.ndarray, weights: str = "") -> np.ndarray:
    return densepose_map(image, weights, "densepose_parula", viridis=False)

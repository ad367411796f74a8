"""`mobile_sam`: segment-anything masks from MobileSAM (`mobile_sam.pt`, dhkim2810/MobileSAM), as the
extension makes them through controlnet_aux's SamDetector and SamAutomaticMaskGenerator (defaults):
the image's long side resized to 1024 (PIL bilinear), ImageNet-normalised and zero-padded square, a
32×32 grid of single foreground points in batches, each point's three masks kept when the predicted
IoU is above 0.88 and the stability score (the IoU of the mask thresholded at ±1) at least 0.95, the
survivors de-duplicated by box non-maximum suppression at IoU 0.7 (highest predicted IoU first), and
the masks painted largest first, each in a random colour, on black.

The extension draws the colours from numpy's unseeded global generator; kekong draws them from `seed`,
so a map is reproducible. The generator's settings are parameters with the extension's defaults.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kekong.detect.learned import WEIGHTS_PARAM
from kekong.detect.learned.sam_model import IMAGE_SIZE, MobileSam, shape_of
from kekong.detect.learned.strict import load_strictly
from kekong.detect.registry import Param, detector
from kekong.errors import KekongError
from kekong.models.weights import find_annotator, load_state_dict

REPO, FILE = "dhkim2810/MobileSAM", "mobile_sam.pt"
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
POINTS_PER_BATCH = 16  # the generator's batches (64 there): the result does not depend on it


@lru_cache(maxsize=2)
def load_mobile_sam(path: str) -> MobileSam:
    state = load_state_dict(path)
    try:
        network = MobileSam(**shape_of(state))  # type: ignore[arg-type]
    except KeyError as exc:
        raise KekongError(f"{path}: does not fit the MobileSAM network (no tensor {exc})") from None
    return load_strictly(network, state, path, "MobileSAM").eval()  # type: ignore[return-value]


def point_grid(per_side: int) -> np.ndarray:
    """(per_side², 2) points (x, y) in [0, 1], at the centres of a per_side × per_side grid, row by row."""
    side = np.linspace(1 / (2 * per_side), 1 - 1 / (2 * per_side), per_side)
    return np.stack([np.tile(side[None, :], (per_side, 1)), np.tile(side[:, None], (1, per_side))], -1).reshape(-1, 2)


def stability_score(logits: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """IoU of the masks thresholded at +offset and −offset (the first lies inside the second)."""
    inner = (logits > offset).flatten(1).sum(1)
    outer = (logits > -offset).flatten(1).sum(1)
    return inner / outer


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, 4) x0, y0, x1, y1 (inclusive pixel indices) around each mask; zeros for an empty one."""
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[1:]
    ys, xs = torch.arange(h), torch.arange(w)
    top = torch.where(rows, ys, h).amin(1)
    bottom = torch.where(rows, ys, -1).amax(1)
    left = torch.where(cols, xs, w).amin(1)
    right = torch.where(cols, xs, -1).amax(1)
    boxes = torch.stack([left, top, right, bottom], 1)
    return torch.where(rows.any(1)[:, None], boxes, 0)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Greedy non-maximum suppression by box IoU (torchvision's `nms` arithmetic), highest score first."""
    boxes = boxes.float()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in torch.argsort(scores, descending=True).tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        low = torch.maximum(boxes[i, :2], boxes[:, :2])
        high = torch.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (high - low).clamp(min=0).prod(1)
        suppressed |= inter / (area[i] + area - inter) > threshold
    return keep


def generate_masks(net: MobileSam, image: np.ndarray, points_per_side: int = 32, pred_iou_thresh: float = 0.88,
                   stability_thresh: float = 0.95, box_nms_thresh: float = 0.7) -> list[np.ndarray]:
    """SamAutomaticMaskGenerator on the whole image (no crop layers): the kept boolean HxW masks, best first."""
    h, w = image.shape[:2]
    scale = IMAGE_SIZE / max(h, w)
    ih, iw = int(h * scale + 0.5), int(w * scale + 0.5)
    resized = np.asarray(Image.fromarray(image).resize((iw, ih), Image.BILINEAR))
    x = (torch.from_numpy(resized.astype(np.float32)).permute(2, 0, 1) - MEAN) / STD
    x = F.pad(x, (0, IMAGE_SIZE - iw, 0, IMAGE_SIZE - ih))[None]
    points = point_grid(points_per_side) * np.array([w, h])
    masks, scores = [], []
    with torch.inference_mode():
        embedding = net.image_encoder(x)
        pe = net.prompt_encoder.dense_pe()
        for start in range(0, len(points), POINTS_PER_BATCH):
            batch = torch.from_numpy(points[start:start + POINTS_PER_BATCH] * [iw / w, ih / h]).float()[:, None]
            sparse = net.prompt_encoder.points(batch, torch.ones(len(batch), 1, dtype=torch.int), IMAGE_SIZE)
            low, iou = net.mask_decoder(embedding, pe, sparse, net.prompt_encoder.no_mask(len(batch)))
            low, iou = low.flatten(0, 1), iou.flatten(0, 1)
            keep = iou > pred_iou_thresh  # filtered before upscaling: the same masks, less work
            if not keep.any():
                continue
            logits = F.interpolate(low[keep][:, None], (IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
            logits = F.interpolate(logits[..., :ih, :iw], (h, w), mode="bilinear", align_corners=False)[:, 0]
            stable = stability_score(logits) >= stability_thresh
            masks.append(logits[stable] > 0.0)
            scores.append(iou[keep][stable])
    if not masks:
        return []
    every, score = torch.cat(masks), torch.cat(scores)
    kept = nms(mask_boxes(every), score, box_nms_thresh)
    return [every[i].numpy() for i in kept]


def paint(masks: list[np.ndarray], shape: tuple[int, int], seed: int) -> np.ndarray:
    """The masks largest first, each in a random colour (0–254 per channel) over the ones before; black elsewhere."""
    canvas = np.zeros((*shape, 3), np.uint8)
    rng = np.random.default_rng(seed)
    for mask in sorted(masks, key=lambda m: int(m.sum()), reverse=True):
        canvas[mask] = rng.integers(0, 255, 3, dtype=np.uint8)
    return canvas


@detector("mobile_sam", "Segment-anything masks by MobileSAM (learned; mobile_sam.pt from dhkim2810/MobileSAM): "
          "a grid of point prompts, masks kept by predicted IoU and stability, de-duplicated, each in a random "
          "colour on black.",
          params=(Param("points_per_side", 32, "point prompts along each side of the grid", 1, 64),
                  Param("pred_iou_thresh", 0.88, "the predicted mask quality a mask needs", 0.0, 1.0),
                  Param("stability_score_thresh", 0.95, "the stability (IoU at logit ±1) a mask needs", 0.0, 1.0),
                  Param("box_nms_thresh", 0.7, "box IoU above which the lesser of two masks is dropped", 0.0, 1.0),
                  Param("seed", 0, "seed of the masks' random colours", 0, 2**31 - 1),
                  WEIGHTS_PARAM),
          feeds=("control_v11p_sd15_seg",), needs_weights=FILE, pad64=False)
def mobile_sam(image: np.ndarray, points_per_side: int = 32, pred_iou_thresh: float = 0.88,
               stability_score_thresh: float = 0.95, box_nms_thresh: float = 0.7, seed: int = 0,
               weights: str = "") -> np.ndarray:
    path = find_annotator(FILE, "mobile_sam", explicit=weights or None, repo=REPO, stand_in="seg_person")
    masks = generate_masks(load_mobile_sam(str(path)), image, points_per_side, pred_iou_thresh,
                           stability_score_thresh, box_nms_thresh)
    return paint(masks, image.shape[:2], seed)

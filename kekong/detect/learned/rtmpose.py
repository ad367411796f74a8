"""RTMPose top-down keypoints with SimCC heads, as sd-webui-controlnet runs DW-Pose's whole-body model
(`dw-ll_ucoco_384.onnx`, 133 COCO-WholeBody points, 288×384 input) and the AP-10K animal model (17
points, 256×256): each box padded by 1.25, widened to the input's aspect ratio and warped (affine,
bilinear, black outside) into the input, normalised with ImageNet's mean/std in 0–255 units (RGB as
given); each point is the arg-max bin of its x and y SimCC vectors, divided by the split ratio 2, its
score the smaller of the two maxima (a point whose score is ≤ 0 is put at bin −1), mapped back from
the crop to image pixels. One box runs at a time (a file with a fixed batch of one runs too).
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.learned.onnx_models import Contract, OnnxNetwork

MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)
SPLIT_RATIO = 2.0
BOX_PADDING = 1.25


def contract(network: str, points: int, input_wh: tuple[int, int]) -> Contract:
    w, h = input_wh
    return Contract(network, (3, h, w), ((points, int(w * SPLIT_RATIO)), (points, int(h * SPLIT_RATIO))))


def box_centre_scale(box: np.ndarray, input_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) and size (w, h) of the padded box, widened to the input's aspect ratio."""
    x1, y1, x2, y2 = (float(v) for v in box)
    centre = np.array([x1 + x2, y1 + y2], np.float32) * 0.5
    w, h = (x2 - x1) * BOX_PADDING, (y2 - y1) * BOX_PADDING
    aspect = input_wh[0] / input_wh[1]
    scale = np.array([w, w / aspect] if w > h * aspect else [h * aspect, h], np.float32)
    return centre, scale


def warp_matrix(centre: np.ndarray, scale: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """The 2×3 affine map taking the box (centre, size) onto the input canvas (no rotation)."""
    out_w, out_h = input_wh
    up, corner = np.array([0.0, -0.5], np.float32), np.array([-0.5, -0.5], np.float32)  # and 90° round
    src = np.array([centre, centre + up * scale[0], centre + corner * scale[0]], np.float32)
    mid = np.array([out_w * 0.5, out_h * 0.5], np.float32)
    dst = np.array([mid, mid + up * out_w, mid + corner * out_w], np.float32)
    return cv2.getAffineTransform(src, dst)


def crop(image: np.ndarray, centre: np.ndarray, scale: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """The box warped into the input (H×W×3 float32, before normalisation)."""
    return cv2.warpAffine(image, warp_matrix(centre, scale, input_wh), input_wh, flags=cv2.INTER_LINEAR) \
        .astype(np.float32)


def simcc_decode(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, Wx), (K, Wy) → points (K, 2) in input pixels and scores (K,)."""
    locs = np.stack([simcc_x.argmax(axis=1), simcc_y.argmax(axis=1)], axis=-1).astype(np.float32)
    scores = np.minimum(simcc_x.max(axis=1), simcc_y.max(axis=1)).astype(np.float32)
    locs[scores <= 0.0] = -1.0
    return locs / SPLIT_RATIO, scores


def estimate(network: OnnxNetwork, image: np.ndarray, boxes: np.ndarray,
             input_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, K, 2) in image pixels and scores (N, K) for each box."""
    points, scores = [], []
    for box in boxes:
        centre, scale = box_centre_scale(box, input_wh)
        feed = (crop(image, centre, scale, input_wh) - MEAN) / STD
        simcc_x, simcc_y = network(feed.transpose(2, 0, 1)[None])[:2]
        locs, score = simcc_decode(simcc_x[0], simcc_y[0])
        points.append(locs / np.asarray(input_wh, np.float32) * scale + centre - scale / 2)
        scores.append(score)
    return np.asarray(points, np.float32), np.asarray(scores, np.float32)

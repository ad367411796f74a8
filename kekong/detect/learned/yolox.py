"""YOLOX-L (DW-Pose's `yolox_l.onnx`, COCO's 80 classes) as sd-webui-controlnet's DW-Pose and animal
pose run it: the image letterboxed into 640×640 (scaled to fit, top-left, grey 114 around, raw 0–255
values, the RGB array as given), the 8400 anchor rows decoded over the stride 8/16/32 grids, box score
= objectness × class score, class-wise NMS at IoU 0.45 over scores > 0.1, and boxes scoring > 0.3 of
the wanted classes kept.
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.learned.onnx_models import Contract, OnnxNetwork

INPUT_HW = (640, 640)
STRIDES = (8, 16, 32)
ROWS = sum((INPUT_HW[0] // s) * (INPUT_HW[1] // s) for s in STRIDES)  # 8400
CONTRACT = Contract("YOLOX-L (yolox_l.onnx)", (3, *INPUT_HW), ((ROWS, 85),))
PERSON = (0,)
ANIMALS = tuple(range(14, 24))  # bird, cat, dog, horse, sheep, cow, elephant, bear, zebra, giraffe
NMS_IOU, CANDIDATE_SCORE, KEEP_SCORE = 0.45, 0.1, 0.3


def letterbox(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(1, 3, 640, 640) float32 input and the scale applied to the image."""
    h, w = image.shape[:2]
    ratio = min(INPUT_HW[0] / h, INPUT_HW[1] / w)
    canvas = np.full((*INPUT_HW, 3), 114, np.uint8)
    nh, nw = int(h * ratio), int(w * ratio)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas.transpose(2, 0, 1)[None].astype(np.float32), ratio


def grid_decode(raw: np.ndarray) -> np.ndarray:
    """Rows (8400, 5 + classes) with centre offsets and log sizes → centre/size in input pixels."""
    grids, strides = [], []
    for stride in STRIDES:
        gh, gw = INPUT_HW[0] // stride, INPUT_HW[1] // stride
        xs, ys = np.meshgrid(np.arange(gw), np.arange(gh))
        grids.append(np.stack((xs, ys), 2).reshape(-1, 2))
        strides.append(np.full((gh * gw, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    out = raw.astype(np.float32).copy()
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy single-class NMS (boxes x1 y1 x2 y2, the +1 pixel area convention YOLOX's demo uses)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / (areas[best] + areas[rest] - inter) <= iou]
    return keep


def detect(network: OnnxNetwork, image: np.ndarray, classes: tuple[int, ...]) -> np.ndarray | None:
    """Boxes (N×4, x1 y1 x2 y2 in image pixels) of the wanted classes; None when nothing of any class
    scored above 0.1 (the extension then finds no one; an empty array means "something, not these")."""
    batch, ratio = letterbox(image)
    rows = grid_decode(network(batch)[0][0])
    scores = rows[:, 4:5] * rows[:, 5:]
    centre, size = rows[:, :2], rows[:, 2:4]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / ratio
    found, any_class = [], False
    for cls in range(scores.shape[1]):
        candidates = scores[:, cls] > CANDIDATE_SCORE
        if not candidates.any():
            continue
        any_class = True
        if cls not in classes:
            continue
        cls_boxes, cls_scores = boxes[candidates], scores[candidates, cls]
        for index in nms(cls_boxes, cls_scores, NMS_IOU):
            if cls_scores[index] > KEEP_SCORE:
                found.append(cls_boxes[index])
    if not any_class:
        return None
    return np.asarray(found, np.float32).reshape(-1, 4)

"""DW-Pose (`dw_openpose_full`) and animal pose (`animal_openpose`) as sd-webui-controlnet runs them:
YOLOX-L finds people (or animals), RTMPose puts keypoints in each box (learned/yolox.py, rtmpose.py),
on the image scaled to the processor resolution and edge-padded to multiples of 64.

DW-Pose's 133 COCO-WholeBody points become OpenPose's layout as the extension converts them: the neck
is the mean of the shoulders (present when both score > 0.3), the 17 COCO body points are reordered to
OpenPose-18, points scoring < 0.3 are missing, 68 face points + the two eyes make OpenPose's 70, and
points 92–112 / 113–133 are the left / right hand. They are drawn by kekong's OpenPose renderer as
`openpose_full` draws and returned as OpenPose JSON. Animal pose's 17 AP-10K points are drawn as the
extension draws them (5 px lines in its 17 limb colours, every point kept whatever its score) and
returned in the extension's JSON form (`animals`: flat x, y, 1 triples).
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.learned import rtmpose, yolox
from kekong.detect.learned.onnx_models import Contract, OnnxNetwork, load_onnx
from kekong.detect.openpose.keypoints import Person, PoseResult
from kekong.detect.openpose.render import draw_pose
from kekong.detect.registry import DetectResult, Param, detector
from kekong.detect.resolution import pad64
from kekong.models.weights import find_annotator

DWPOSE_REPO, YOLOX_FILE, DW_FILE = "yzd-v/DWPose", "yolox_l.onnx", "dw-ll_ucoco_384.onnx"
ANIMAL_REPO = "bdsqlsz/qinglong_controlnet-lllite"
ANIMAL_FILE = "rtmpose-m_simcc-ap10k_pt-aic-coco_210e-256x256-7a041aa1_20230206.onnx"
DW_INPUT, ANIMAL_INPUT = (288, 384), (256, 256)  # (w, h)
DW_CONTRACT = rtmpose.contract("RTMPose whole-body (dw-ll_ucoco_384.onnx)", 133, DW_INPUT)
ANIMAL_CONTRACT = rtmpose.contract("RTMPose AP-10K", 17, ANIMAL_INPUT)
SCORE = 0.3
# mmpose (COCO) body index for each OpenPose-18 index; 17 is the neck inserted after the 17 COCO points
OPENPOSE_FROM_COCO = (0, 17, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
FACE, LEFT_HAND, RIGHT_HAND = slice(24, 92), slice(92, 113), slice(113, 134)  # after the neck's insertion

AP10K_LIMBS = ((1, 2), (2, 3), (1, 3), (3, 4), (4, 9), (9, 10), (10, 11), (4, 6), (6, 7), (7, 8), (4, 5),
               (5, 15), (15, 16), (16, 17), (5, 12), (12, 13), (13, 14))
AP10K_COLOURS = ((255, 255, 255), (100, 255, 100), (150, 255, 255), (100, 50, 255), (50, 150, 200),
                 (0, 255, 255), (0, 150, 0), (0, 0, 255), (0, 0, 150), (255, 50, 255), (255, 0, 255),
                 (255, 0, 0), (150, 0, 0), (255, 255, 100), (0, 150, 0), (255, 255, 0), (150, 150, 150))
FEEDS = ("control_v11p_sd15_openpose", "thibaud/controlnet-openpose-sdxl-1.0")  # animal maps: a unit names its model
DET_PARAM = Param("detector_weights", "", "path of yolox_l.onnx (default: looked up)")
POSE_PARAM = Param("weights", "", "path of the pose model's .onnx file (default: looked up)")


def _network(filename: str, repo: str, contract: Contract, who: str, explicit: str,
             stand_in: str | None) -> OnnxNetwork:
    param = DET_PARAM.name if filename == YOLOX_FILE else POSE_PARAM.name  # the one a user sets for this file
    path = find_annotator(filename, who, explicit=explicit or None, repo=repo, stand_in=stand_in, param=param)
    return load_onnx(str(path), contract)


def _padded(image: np.ndarray) -> np.ndarray:
    """Edge-padded to multiples of 64 on the right and bottom, as the extension's openpose runs."""
    h, w = image.shape[:2]
    return np.pad(image, [[0, pad64(h)], [0, pad64(w)], [0, 0]], mode="edge")


def wholebody(keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N, 133, 2) + (N, 133) → (N, 134, 3) with the neck inserted and the body in OpenPose order."""
    info = np.concatenate([keypoints, scores[..., None]], axis=-1)
    neck = info[:, [5, 6]].mean(axis=1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > SCORE, info[:, 6, 2] > SCORE).astype(np.float32)
    info = np.insert(info, 17, neck, axis=1)
    info[:, :18] = info[:, list(OPENPOSE_FROM_COCO)]
    return info


def _part(points: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Points (x, y, score) in pixels → normalised, NaN below the score; None when none is left."""
    part = points.astype(np.float32).copy()
    part[:, 0] /= width
    part[:, 1] /= height
    part[part[:, 2] < SCORE] = np.nan
    return None if np.isnan(part[:, 0]).all() else part


def people(info: np.ndarray, width: int, height: int) -> list[Person]:
    """The extension's format_result on kekong's Person: missing body points NaN, empty parts None."""
    found = []
    for person in info:
        body = _part(person[:18], width, height)
        body = body if body is not None else np.full((18, 3), np.nan, np.float32)
        face = _part(person[FACE], width, height)
        if face is not None:
            face = np.concatenate([face, body[14:16]])  # OpenPose's 69th/70th: the eyes
        found.append(Person(body=body, left_hand=_part(person[LEFT_HAND], width, height),
                            right_hand=_part(person[RIGHT_HAND], width, height), face=face))
    return found


@detector("dw_openpose_full", "DW-Pose body, hands and face (learned; yolox_l.onnx + dw-ll_ucoco_384.onnx via "
          "onnxruntime), drawn in OpenPose colours; keypoints exported as OpenPose JSON.",
          params=(DET_PARAM, POSE_PARAM), feeds=FEEDS, needs_weights=f"{YOLOX_FILE} + {DW_FILE}", pad64=False,
          structured=True)
def dw_openpose_full(image: np.ndarray, detector_weights: str = "", weights: str = "") -> DetectResult:
    h, w = image.shape[:2]
    det = _network(YOLOX_FILE, DWPOSE_REPO, yolox.CONTRACT, "dw_openpose_full", detector_weights, "openpose_full")
    pose = _network(DW_FILE, DWPOSE_REPO, DW_CONTRACT, "dw_openpose_full", weights, "openpose_full")
    work = _padded(image)
    boxes = yolox.detect(det, work, yolox.PERSON)
    found: list[Person] = []
    if boxes is not None:
        if len(boxes) == 0:  # something, but no person: the extension then takes the whole image as the box
            boxes = np.array([[0, 0, work.shape[1], work.shape[0]]], np.float32)
        keypoints, scores = rtmpose.estimate(pose, work, boxes, DW_INPUT)
        found = people(wholebody(keypoints, scores), w, h)
    result = PoseResult(people=found, width=w, height=h)
    return DetectResult(draw_pose(result, body=True, hands=True, face=True), result.to_json())


def draw_animals(animals: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """AP-10K skeletons (17 × (x, y, score), pixels) as the extension draws them."""
    canvas = np.zeros((height, width, 3), np.uint8)
    for points in animals:
        for (a, b), colour in zip(AP10K_LIMBS, AP10K_COLOURS, strict=True):
            pa, pb = points[a - 1], points[b - 1]
            cv2.line(canvas, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), colour, 5)
    return canvas


@detector("animal_openpose", "Animal pose: YOLOX finds animals, RTMPose AP-10K puts 17 keypoints on each "
          "(learned; yolox_l.onnx + rtmpose-m_simcc-ap10k….onnx via onnxruntime), drawn in the extension's "
          "animal skeleton colours; keypoints exported as JSON (`animals`).",
          params=(DET_PARAM, POSE_PARAM), feeds=(), needs_weights=f"{YOLOX_FILE} + {ANIMAL_FILE}", pad64=False,
          structured=True)
def animal_openpose(image: np.ndarray, detector_weights: str = "", weights: str = "") -> DetectResult:
    h, w = image.shape[:2]
    det = _network(YOLOX_FILE, DWPOSE_REPO, yolox.CONTRACT, "animal_openpose", detector_weights, None)
    pose = _network(ANIMAL_FILE, ANIMAL_REPO, ANIMAL_CONTRACT, "animal_openpose", weights, None)
    work = _padded(image)
    boxes = yolox.detect(det, work, yolox.ANIMALS)
    animals: list[np.ndarray] = []
    if boxes is not None and len(boxes):
        keypoints, scores = rtmpose.estimate(pose, work, boxes, ANIMAL_INPUT)
        animals = [np.concatenate([k, s.clip(0.0, 1.0)[:, None]], axis=1) for k, s in zip(keypoints, scores,
                                                                                          strict=True)]
    canvas = draw_animals(animals, *work.shape[:2])[:h, :w]
    data = {"people": [], "animals": [[round(float(v), 3) for x, y, _ in a for v in (x, y, 1.0)] for a in animals],
            "canvas_width": w, "canvas_height": h}
    return DetectResult(np.ascontiguousarray(canvas), data)

"""Fidelity metrics in the ControlNet++ protocol (Li et al., 2024): the condition re-detected on the
output, compared with the condition the unit used. Pure numpy in, a number out; each states its range.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

EDGE_TOLERANCE_PX = 2  # an edge pixel counts as matched within this distance (at the map's size)
PCK_FRACTION = 0.1  # a keypoint is correct within this fraction of the person's torso size


def _binary(edges: np.ndarray) -> np.ndarray:
    grey = edges if edges.ndim == 2 else edges.max(axis=2)
    return grey > 127


def edge_f1(reference: np.ndarray, output: np.ndarray, tolerance: int = EDGE_TOLERANCE_PX) -> float:
    """F1 of edge pixels (white on black), each matched within `tolerance` px: 1 = the same edges,
    0 = none in common. Two empty maps score 1 (nothing to follow, nothing added)."""
    ref, out = _binary(reference), _binary(output)
    if not ref.any() and not out.any():
        return 1.0
    if not ref.any() or not out.any():
        return 0.0
    to_ref = cv2.distanceTransform((~ref).astype(np.uint8), cv2.DIST_L2, 3)
    to_out = cv2.distanceTransform((~out).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((to_ref[out] <= tolerance).mean())
    recall = float((to_out[ref] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def map_ssim(reference: np.ndarray, output: np.ndarray) -> float:
    """SSIM of the two maps in grey (1 = identical)."""
    from skimage.metrics import structural_similarity

    def grey(image: np.ndarray) -> np.ndarray:
        return image if image.ndim == 2 else cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2GRAY)

    return float(structural_similarity(grey(reference), grey(output), data_range=255))


def _people(pose: dict[str, Any]) -> list[np.ndarray]:
    """Body keypoints (18 × 3: x, y in pixels, confidence) of each person in OpenPose JSON."""
    people = []
    for person in pose.get("people", []):
        flat = person.get("pose_keypoints_2d") or []
        if len(flat) >= 18 * 3:
            people.append(np.asarray(flat[:54], np.float64).reshape(18, 3))
    return people


def _torso(body: np.ndarray) -> float:
    """Neck (1) to mid-hip (8, 11) distance, else the keypoints' bounding-box diagonal."""
    hips = [body[i, :2] for i in (8, 11) if body[i, 2] > 0]
    if body[1, 2] > 0 and hips:
        return float(np.linalg.norm(body[1, :2] - np.mean(hips, axis=0)))
    seen = body[body[:, 2] > 0, :2]
    return float(np.linalg.norm(seen.max(0) - seen.min(0))) if len(seen) > 1 else 0.0


def pose_pck(reference: dict[str, Any], output: dict[str, Any], fraction: float = PCK_FRACTION) -> float:
    """Percentage of the reference's body keypoints found in the output within `fraction` of the
    torso size, people matched by Hungarian assignment (a missing person scores 0 for its points)."""
    from scipy.optimize import linear_sum_assignment

    ref_people, out_people = _people(reference), _people(output)
    total = sum(int((body[:, 2] > 0).sum()) for body in ref_people)
    if total == 0:
        return 1.0 if not out_people else 0.0
    if not out_people:
        return 0.0

    def correct(ref: np.ndarray, out: np.ndarray) -> int:
        both = (ref[:, 2] > 0) & (out[:, 2] > 0)
        limit = fraction * _torso(ref)  # a person with one point has no size: only an exact match counts
        return int((np.linalg.norm(ref[both, :2] - out[both, :2], axis=1) <= limit).sum())

    scores = np.array([[correct(r, o) for o in out_people] for r in ref_people])
    rows, cols = linear_sum_assignment(-scores)
    return float(scores[rows, cols].sum() / total)


def depth_rmse(reference: np.ndarray, output: np.ndarray) -> float:
    """Scale-and-shift-invariant RMSE of two depth maps on [0, 1] (0 = the same up to scale/shift):
    the output is fitted to the reference by least squares first, with a scale ≥ 0."""
    ref = (reference if reference.ndim == 2 else reference.mean(axis=2)).astype(np.float64).ravel() / 255
    out = (output if output.ndim == 2 else output.mean(axis=2)).astype(np.float64).ravel() / 255
    design = np.stack([out, np.ones_like(out)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, ref, rcond=None)
    if scale < 0:  # a depth map turned inside out (near is far) is not the same depth
        scale, shift = 0.0, float(ref.mean())
    return float(np.sqrt(np.mean((scale * out + shift - ref) ** 2)))


def normal_angle(reference: np.ndarray, output: np.ndarray) -> float:
    """Mean angle in degrees between the normals two normal maps encode (RGB = xyz in [-1, 1])."""

    def vectors(image: np.ndarray) -> np.ndarray:
        v = image.astype(np.float64).reshape(-1, 3) / 127.5 - 1
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-6)

    cos = np.clip((vectors(reference) * vectors(output)).sum(axis=1), -1, 1)
    return float(np.degrees(np.arccos(cos)).mean())


def seg_miou(reference: np.ndarray, output: np.ndarray) -> float:
    """Mean IoU over the classes (colours of the segmentation palette) present in the reference."""
    def labels(image: np.ndarray) -> np.ndarray:
        rgb = image.astype(np.int64)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]

    ref, out = labels(reference), labels(output)
    ious = [float(((ref == c) & (out == c)).sum() / ((ref == c) | (out == c)).sum()) for c in np.unique(ref)]
    return float(np.mean(ious))

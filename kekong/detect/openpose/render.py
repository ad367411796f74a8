"""Draw OpenPose skeletons exactly as ControlNet's openpose annotator does (ControlNet 1.1).

Limbs: filled ellipses 4 px wide in the 18 OpenPose colours, dimmed to 60%; keypoints:
4 px circles in full colour. Hands: 2 px lines coloured along the HSV wheel, blue 4 px
keypoints. Face: white 3 px dots (smaller on a face under 75 px wide, so they stay dots). All on
black. The models were trained on these maps.
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

from kekong.detect.openpose.keypoints import PoseResult
from kekong.sizes import check_canvas

STICK_WIDTH = 4
# Pairs of 1-based body keypoint indices; ControlNet draws the first 17 (ears→shoulders skipped).
LIMBS = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
    (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18),
)
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19),
    (19, 20),
)
HAND_EDGE_COLORS = tuple(
    tuple(int(c * 255) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))
    for i in range(len(HAND_EDGES))
)
HAND_POINT_COLOR = (0, 0, 255)
FACE_POINT_COLOR = (255, 255, 255)
EPS = 0.01  # points at the canvas' top/left edge count as missing, as in ControlNet
_DIMMED = (np.arange(256) * 0.6).astype(np.uint8)  # limbs at 60%, value by value as ControlNet computes it


def draw_pose(pose: PoseResult, width: int | None = None, height: int | None = None,
              body: bool = True, hands: bool = True, face: bool = True) -> np.ndarray:
    """Render people onto a black uint8 HxWx3 canvas (default: the pose's canvas size), at most
    MAX_CANVAS_SIDE px per side (refused before it is allocated)."""
    w, h = width or pose.width, height or pose.height
    check_canvas(w, h)
    canvas = np.zeros((h, w, 3), np.uint8)
    if body:
        canvas = _draw_bodies(canvas, [p.body for p in pose.people if p.body is not None])
    if hands:
        for person in pose.people:
            for hand in (person.left_hand, person.right_hand):
                if hand is not None:
                    _draw_hand(canvas, hand)
    if face:
        for person in pose.people:
            if person.face is not None:
                _draw_face(canvas, person.face)
    return canvas


def _pixels(points: np.ndarray, w: int, h: int) -> list[tuple[int, int] | None]:
    """Each normalised point's pixel, None where it is missing or at the top/left edge (below EPS).
    In float64, as the products of numpy's float32 scalars with ints were (the same pixels), for all
    points at once: one call per point was half of drawing a full pose."""
    xy = points[:, :2].astype(np.float64)
    shown = ~np.isnan(xy[:, 0]) & (xy[:, 0] >= EPS) & (xy[:, 1] >= EPS)
    pixels = np.zeros((len(xy), 2), np.int64)
    pixels[shown] = (xy[shown] * (w, h)).astype(np.int64)  # truncation towards 0, as int() does
    return [(int(x), int(y)) if keep else None for (x, y), keep in zip(pixels.tolist(), shown.tolist(), strict=True)]


def _draw_bodies(canvas: np.ndarray, bodies: list[np.ndarray]) -> np.ndarray:
    h, w = canvas.shape[:2]
    for limb, color in zip(LIMBS, COLORS, strict=False):
        for body in bodies:
            a, b = body[limb[0] - 1], body[limb[1] - 1]
            if np.isnan(a[0]) or np.isnan(b[0]):
                continue
            ax, ay, bx, by = a[0] * w, a[1] * h, b[0] * w, b[1] * h
            length = math.hypot(ax - bx, ay - by)
            angle = math.degrees(math.atan2(ay - by, ax - bx))
            centre = (int((ax + bx) / 2), int((ay + by) / 2))
            polygon = cv2.ellipse2Poly(centre, (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, color)
    canvas = cv2.LUT(canvas, _DIMMED)  # ControlNet's (canvas * 0.6).astype(uint8), value by value (no float copy)
    pixels = [_pixels(body, w, h) for body in bodies]
    for index, color in enumerate(COLORS):
        for points in pixels:
            if points[index] is not None:
                cv2.circle(canvas, points[index], 4, color, thickness=-1)
    return canvas


def _draw_hand(canvas: np.ndarray, hand: np.ndarray) -> None:
    h, w = canvas.shape[:2]
    points = _pixels(hand, w, h)
    for (i, j), color in zip(HAND_EDGES, HAND_EDGE_COLORS, strict=True):
        a, b = points[i], points[j]
        if a is not None and b is not None:
            cv2.line(canvas, a, b, color, thickness=2)
    for xy in points:
        if xy is not None:
            cv2.circle(canvas, xy, 4, HAND_POINT_COLOR, thickness=-1)


def face_dot_radius(face: np.ndarray, w: int, h: int) -> int:
    """ControlNet's 3 px, smaller on a small face (a 30th of its width, at least 1 px): 70 dots of
    3 px on a face 25 px wide (the astronaut at 128 px) merge into a white blob."""
    points = face[~np.isnan(face[:, 0]), :2] * (w, h)
    span = float(np.ptp(points, axis=0).max()) if len(points) else 0.0
    return int(np.clip(round(span / 30), 1, 3))


def _draw_face(canvas: np.ndarray, face: np.ndarray) -> None:
    h, w = canvas.shape[:2]
    radius = face_dot_radius(face, w, h)
    for xy in _pixels(face, w, h):
        if xy is not None:
            cv2.circle(canvas, xy, radius, FACE_POINT_COLOR, thickness=-1)

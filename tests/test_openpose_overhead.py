"""OpenPose's own work around the mediapipe calls was made cheaper (issue 28 item 5) without changing
a pixel: each faster step against the straightforward computation it replaced."""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.openpose import mediapipe_pose, render
from kekong.detect.openpose.keypoints import empty


def pixel_one_by_one(point: np.ndarray, w: int, h: int) -> tuple[int, int] | None:
    """The drawing's former per-point rule: float32 scalars times ints, truncated by int()."""
    if np.isnan(point[0]) or point[0] < render.EPS or point[1] < render.EPS:
        return None
    return int(point[0] * w), int(point[1] * h)


def test_pixels_of_all_points_at_once_equal_the_per_point_rule():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.05, 1.05, (5000, 3)).astype(np.float32)
    points[rng.random(5000) < 0.1] = np.nan
    points[:4, :2] = [[render.EPS, 0.5], [0.5, render.EPS], [np.nextafter(np.float32(render.EPS), 0), 0.5],
                      [1.0, 1.0]]  # at the edge, just below it, the far corner
    for w, h in ((512, 512), (741, 512), (333, 1000)):
        assert render._pixels(points, w, h) == [pixel_one_by_one(p, w, h) for p in points]


def test_masking_a_person_out_paints_the_same_pixels_as_boolean_indexing():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (300, 451, 3), np.uint8)
    segmentation = rng.random((300, 451)).astype(np.float32)
    segmentation[:, 200:] = 0.5  # exactly the threshold: not the person (strictly above 0.5 is)
    body = empty(18)
    body[[0, 1, 2], :2] = [[0.2, 0.2], [0.25, 0.4], [0.3, 0.5]]
    for seg in (segmentation, None):
        work = image.copy()
        area = mediapipe_pose._mask_out(work, seg, body)
        expected = image.copy()
        mask = (seg > 0.5).astype(np.uint8) if seg is not None else np.zeros((300, 451), np.uint8)
        x0, y0, x1, y1 = 0.2 * 451, 0.2 * 300, 0.3 * 451, 0.5 * 300
        pad = 0.15 * max(x1 - x0, y1 - y0, 1)
        cv2.rectangle(mask, (int(x0 - pad), int(y0 - pad)), (int(x1 + pad), int(y1 + pad)), 1, -1)
        mask = cv2.dilate(mask, np.ones((9, 9), np.uint8))
        expected[mask > 0] = mediapipe_pose.MASK_FILL
        assert area.dtype == bool and np.array_equal(area, mask > 0)
        assert np.array_equal(work, expected)


def test_dimming_the_limbs_is_controlnets_float_multiply():
    canvas = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    dimmed = render._draw_bodies(canvas.copy(), [])
    assert np.array_equal(dimmed, (canvas * 0.6).astype(np.uint8))

"""Optical flow on synthetic motion (a known shift is recovered within 0.5 px), occlusion, the warp
error, and One-Euro smoothing of pose keypoints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kekong.video.flow import motion, warp, warp_error
from kekong.video.smooth import OneEuro, PoseSmoother
from kekong.video.spec import FlowMethod


def texture(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 2)
    grey = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("method", list(FlowMethod))
@pytest.mark.parametrize("shift", [(3.0, -2.0), (1.5, 0.5), (-4.0, 0.0)])
def test_a_known_shift_is_recovered_within_half_a_pixel(method, shift):
    before = texture()
    after = shifted(before, *shift)
    backward, hidden = motion(before, after, method)
    inner = backward[16:-16, 16:-16]  # away from the borders the shift brings in
    assert np.abs(inner[..., 0] + shift[0]).mean() < 0.5
    assert np.abs(inner[..., 1] + shift[1]).mean() < 0.5
    assert hidden[16:-16, 16:-16].mean() < 0.05
    # warping the earlier frame by the flow predicts the later one
    predicted = warp(before, backward)
    assert np.abs(predicted[16:-16, 16:-16].astype(int) - after[16:-16, 16:-16].astype(int)).mean() < 4


def test_pixels_coming_in_at_the_border_are_occluded():
    before = texture()
    after = shifted(before, 6.0, 0.0)  # moves right: the left columns come from outside
    _, hidden = motion(before, after)
    assert hidden[:, :4].mean() > 0.8
    assert hidden[:, 30:60].mean() < 0.05


def test_warp_error_separates_consistent_from_flickering_frames():
    before = texture()
    after = shifted(before, 2.0, 1.0)
    backward, hidden = motion(before, after)
    steady = warp_error(before, after, backward, hidden)
    flicker = warp_error(texture(seed=5), after, backward, hidden)
    assert steady < 3 and flicker > 20


def test_one_euro_removes_jitter_at_rest_and_follows_motion():
    rng = np.random.default_rng(1)
    smooth = OneEuro(min_cutoff=1.0, beta=0.3)
    still = [smooth(np.array([0.5 + rng.normal(0, 0.01)]), 1 / 24)[0] for _ in range(48)]
    assert np.std(still[10:]) < 0.4 * 0.01  # jitter at rest mostly gone
    moving = OneEuro(min_cutoff=1.0, beta=5.0)
    path = [moving(np.array([t / 24]), 1 / 24)[0] for t in range(48)]
    assert abs(path[-1] - 47 / 24) < 0.1  # a fast, steady motion is followed with little lag


def test_one_euro_restarts_a_point_that_went_missing():
    smooth = OneEuro()
    smooth(np.array([0.1, 0.1]), 0.04)
    smooth(np.array([np.nan, 0.1]), 0.04)
    out = smooth(np.array([0.9, 0.1]), 0.04)
    assert out[0] == pytest.approx(0.9)  # back: taken as seen, not dragged from 0.1


def test_pose_smoother_keeps_missing_parts_missing():
    from kekong.detect.openpose.keypoints import Person, PoseResult, empty

    body = empty(18)
    body[0] = (0.5, 0.5, 1.0)
    smoother = PoseSmoother()
    first = smoother(PoseResult([Person(body=body)], 64, 64), 0.04)
    moved = body.copy()
    moved[0, :2] = (0.52, 0.5)
    second = smoother(PoseResult([Person(body=moved)], 64, 64), 0.04)
    assert first.people[0].body[0, 0] == pytest.approx(0.5)
    assert 0.5 < second.people[0].body[0, 0] < 0.52  # smoothed towards the new place
    assert np.isnan(second.people[0].body[1, 0]) and second.people[0].left_hand is None

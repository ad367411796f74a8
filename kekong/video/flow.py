"""Optical flow between source frames, warping by it, occlusion, and the warp error that measures
temporal consistency.

The flow is *backward*: for each pixel of frame t, where it was in frame t−1, so the previous
output is sampled there (`warp`). A pixel is occluded when the forward and backward flows do not
undo each other (it was hidden in t−1, or is about to be) or its source lies outside the frame."""

from __future__ import annotations

import cv2
import numpy as np

from kekong.video.spec import FlowMethod

# forward-backward check (Sundaram, Brox & Keutzer 2010): |f + b|² > SHARE·(|f|² + |b|²) + SLACK px² is suspect.
# In flat areas the flow is a guess either way, and the two guesses disagree where nothing is hidden: a suspect
# pixel counts as occluded only when its predicted grey level is also off by COLOUR; off by FAR it always is.
SHARE, SLACK = 0.01, 0.5
COLOUR, FAR = 10.0, 30.0


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def flow(source: np.ndarray, target: np.ndarray, method: FlowMethod = FlowMethod.DIS) -> np.ndarray:
    """Dense flow (H×W×2, x then y, pixels) from `source` to `target`: pixel p of `source` is at
    p + flow[p] in `target`."""
    a, b = _gray(source), _gray(target)
    if method == FlowMethod.FARNEBACK:
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 5, 7, 1.5, 0)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if min(a.shape) < 128:  # small frames: finer patches, or the flow smears across a 64 px picture
        dis.setPatchSize(6)
        dis.setPatchStride(2)
    return dis.calc(a, b, None)


def warp(image: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """`image` (frame t−1) sampled at p + backward[p]: frame t as the motion predicts it."""
    height, width = backward.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + backward[..., 0], grid_y + backward[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def occluded(backward: np.ndarray, forward: np.ndarray, previous: np.ndarray | None = None,
             current: np.ndarray | None = None) -> np.ndarray:
    """Bool H×W: pixels of frame t with no trustworthy source in frame t−1: the source lies outside
    the frame, or the flows disagree (and, given the frames, the predicted grey level is off too)."""
    height, width = backward.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    x, y = grid_x + backward[..., 0], grid_y + backward[..., 1]
    outside = (x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)
    there = cv2.remap(forward, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mismatch = np.sum((backward + there) ** 2, axis=-1)
    allowed = SHARE * (np.sum(backward ** 2, axis=-1) + np.sum(there ** 2, axis=-1)) + SLACK
    suspect = mismatch > allowed
    if previous is None or current is None:
        return outside | suspect
    off = np.abs(warp(_gray(previous).astype(np.float32), backward) - _gray(current).astype(np.float32))
    return outside | (suspect & (off > COLOUR)) | (off > FAR)


def motion(previous: np.ndarray, current: np.ndarray, method: FlowMethod = FlowMethod.DIS) \
        -> tuple[np.ndarray, np.ndarray]:
    """(backward flow of `current` into `previous`, occlusion mask of `current`)."""
    backward = flow(current, previous, method)
    forward = flow(previous, current, method)
    return backward, occluded(backward, forward, previous, current)


def warped_start(previous_output: np.ndarray, backward: np.ndarray, hidden: np.ndarray,
                 noise: np.ndarray) -> np.ndarray:
    """The previous output carried along the motion; occluded pixels from `noise` (a picture of
    fresh latent noise, so the repaint pass draws them anew)."""
    return np.where(hidden[..., None], noise, warp(previous_output, backward))


def warp_error(previous: np.ndarray, current: np.ndarray, backward: np.ndarray, hidden: np.ndarray) -> float:
    """Mean absolute difference (0–255) between `current` and `previous` warped by the flow, over
    the pixels that are not occluded."""
    predicted = warp(previous.astype(np.float32), backward)
    difference = np.abs(current.astype(np.float32) - predicted).mean(axis=-1)
    keep = ~hidden
    return float(difference[keep].mean()) if keep.any() else 0.0

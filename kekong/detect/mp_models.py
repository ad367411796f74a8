"""Lazily created, cached mediapipe solutions (their models ship inside the mediapipe wheel).

mediapipe graphs are not thread-safe, so every call goes through one lock per solution.
Only model complexity 1 is used for pose: 0.10.14 ships pose_landmark_full alone and the
other complexities try to download their model, which fails offline.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging: errors only
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class Solution:
    """A mediapipe solution with a lock around `process`."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._solution = make()
        self._lock = threading.Lock()

    def process(self, image: np.ndarray) -> Any:
        with self._lock:
            return self._solution.process(np.ascontiguousarray(image))


def _solutions() -> Any:
    import mediapipe as mp

    return mp.solutions


@cache
def pose() -> Solution:
    return Solution(lambda: _solutions().pose.Pose(
        static_image_mode=True, model_complexity=1, enable_segmentation=True,
        min_detection_confidence=0.5))


@cache
def hands(max_hands: int = 8) -> Solution:
    return Solution(lambda: _solutions().hands.Hands(
        static_image_mode=True, max_num_hands=max_hands, model_complexity=1,
        min_detection_confidence=0.5))


@cache
def face_mesh(max_faces: int = 8) -> Solution:
    return Solution(lambda: _solutions().face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True,
        min_detection_confidence=0.5))


@cache
def selfie_segmentation(landscape: bool = False) -> Solution:
    return Solution(lambda: _solutions().selfie_segmentation.SelfieSegmentation(
        model_selection=1 if landscape else 0))

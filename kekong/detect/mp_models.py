"""Lazily created, cached mediapipe solutions (their models ship inside the mediapipe wheel).

mediapipe graphs are not thread-safe, so every call goes through one lock per solution.
mediapipe's C++ side (TF Lite, absl) logs straight to file descriptor 2 — "Created TensorFlow Lite
XNNPACK delegate", absl's "before InitializeLog" notice, `W0000 … inference_feedback_manager` — from
its graph threads while a graph starts, whatever GLOG_minloglevel says; so fd 2 is captured from
making a solution to the end of its first image, and every other line is written back afterwards.
Only model complexity 1 is used for pose: 0.10.14 ships pose_landmark_full alone and the
other complexities try to download their model, which fails offline.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging: errors only
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# mediapipe's packet getters call protobuf's deprecated GetPrototype on every result. A filter on
# that one message (catch_warnings around each call would not be thread-safe).
warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated",
                        category=UserWarning, module=r"google\.protobuf")

# Lines mediapipe's C++ start-up writes to fd 2: TF Lite's INFO, absl's pre-init notice, and
# absl/glog-format INFO or WARNING lines (`W0000 00:00:… 1234 file.cc:114] …`). Errors are kept.
_NOISE = re.compile(rb"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
                    rb"|[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\] )")
_FD2_LOCK = threading.Lock()


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Capture fd 2 for the block; afterwards write back every line that is not mediapipe's start-up
    noise (another thread's output is delayed, never lost)."""
    with _FD2_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().splitlines(keepends=True) if not _NOISE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


class Solution:
    """A mediapipe solution with a lock around `process`, made at its first image."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._solution: Any = None
        self._lock = threading.Lock()

    def process(self, image: np.ndarray) -> Any:
        with self._lock:
            if self._solution is not None:
                return self._solution.process(np.ascontiguousarray(image))
            # One capture from making the graph to the end of its first image: the graph's
            # calculators open (and log) on its own threads after the constructor has returned,
            # so a capture of the constructor alone missed lines now and then.
            with quiet_native_stderr():
                solution = self._make()
                result = solution.process(np.ascontiguousarray(image))
            self._solution = solution
            return result


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

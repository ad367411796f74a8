"""sd-webui-controlnet's mediapipe_face: the face mesh contours of up to `max_faces` faces, drawn as
the extension's annotator draws them, on mediapipe's bundled face-mesh model (no weights to fetch).

Faces whose landmark box is under 64 px on its short side are dropped; face oval, eyes, eyebrows
and lips are drawn 2 px wide in the annotator's colours with mediapipe's own drawing routine, the
pupils as 4×4 squares; the annotator draws in BGR and flips to RGB at the end, and so does kekong.
No face: a black map.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import numpy as np

from kekong.detect.mp_models import Solution
from kekong.detect.registry import Param, detector

MIN_FACE_PIXELS = 64
_THICK, _RADIUS = 2, 1


@lru_cache(maxsize=4)
def _face_mesh(max_faces: int, min_confidence: float) -> Solution:
    import mediapipe as mp

    return Solution(lambda: mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True,
        min_detection_confidence=min_confidence))


@cache
def _styles() -> tuple[dict[tuple[int, int], Any], dict[int, Any]]:
    """(connection → drawing spec, iris landmark → spec), the annotator's colours (BGR)."""
    import mediapipe as mp

    spec = mp.solutions.drawing_styles.DrawingSpec
    mesh = mp.solutions.face_mesh

    def colour(bgr: tuple[int, int, int]) -> Any:
        return spec(color=bgr, thickness=_THICK, circle_radius=_RADIUS)

    parts = ((mesh.FACEMESH_FACE_OVAL, (10, 200, 10)), (mesh.FACEMESH_LEFT_EYE, (180, 200, 10)),
             (mesh.FACEMESH_LEFT_EYEBROW, (180, 220, 10)), (mesh.FACEMESH_RIGHT_EYE, (10, 200, 180)),
             (mesh.FACEMESH_RIGHT_EYEBROW, (10, 220, 180)), (mesh.FACEMESH_LIPS, (10, 180, 10)))
    connections = {edge: colour(bgr) for edges, bgr in parts for edge in edges}
    return connections, {468: colour((10, 200, 250)), 473: colour((250, 200, 10))}


def _big_enough(landmarks: Any, width: int, height: int) -> bool:
    xs = [p.x for p in landmarks.landmark]
    ys = [p.y for p in landmarks.landmark]
    return min((max(xs) - min(xs)) * width, (max(ys) - min(ys)) * height) >= MIN_FACE_PIXELS


def _draw_pupils(canvas: np.ndarray, landmarks: Any, specs: dict[int, Any], half: int = 2) -> None:
    rows, cols = canvas.shape[:2]
    for index, point in enumerate(landmarks.landmark):
        if (point.HasField("visibility") and point.visibility < 0.9) or \
                (point.HasField("presence") and point.presence < 0.5):
            continue
        if not (0 <= point.x < 1.0 and 0 <= point.y < 1.0) or index not in specs:
            continue
        x, y = int(cols * point.x), int(rows * point.y)
        canvas[y - half:y + half, x - half:x + half, :] = specs[index].color


@detector(
    "mediapipe_face", "MediaPipe face mesh: face oval, eyes, eyebrows, lips and pupils in the colours "
    "sd-webui-controlnet's mediapipe_face draws (offline: mediapipe's bundled face-mesh model).",
    params=(Param("max_faces", 1, "most faces to draw", 1, 10),
            Param("min_confidence", 0.5, "face detection confidence a face needs", 0.01, 1.0)),
    feeds=("CrucibleAI/ControlNetMediaPipeFace",),
)
def mediapipe_face(image: np.ndarray, max_faces: int = 1, min_confidence: float = 0.5) -> np.ndarray:
    import mediapipe as mp

    found = _face_mesh(max_faces, min_confidence).process(image).multi_face_landmarks
    canvas = np.zeros_like(image)
    if not found:
        return canvas
    connections, irises = _styles()
    height, width = image.shape[:2]
    for landmarks in found:
        if _big_enough(landmarks, width, height):
            mp.solutions.drawing_utils.draw_landmarks(canvas, landmarks, connections=connections.keys(),
                                                      landmark_drawing_spec=None,
                                                      connection_drawing_spec=connections)
            _draw_pupils(canvas, landmarks, irises)
    return canvas[:, :, ::-1].copy()

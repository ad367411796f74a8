"""The OpenPose keypoint layout and its JSON form.

Body: 18 COCO-order keypoints (0 nose, 1 neck, 2–4 right shoulder/elbow/wrist, 5–7 left
shoulder/elbow/wrist, 8–10 right hip/knee/ankle, 11–13 left hip/knee/ankle, 14/15 right/left
eye, 16/17 right/left ear). Hands: 21 points each. Face: 70 points (68 dlib-order + 2 pupils).
"Right"/"left" are the person's own sides. Coordinates here are normalised to [0, 1];
missing keypoints are NaN. JSON uses pixel coordinates, 0,0,0 for missing, as OpenPose does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kekong.detect.resolution import ResizeMode, fit_geometry
from kekong.errors import KekongError

BODY_POINTS, HAND_POINTS, FACE_POINTS = 18, 21, 70
BODY_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)
_PARTS = {  # JSON key → (attribute, number of points)
    "pose_keypoints_2d": ("body", BODY_POINTS),
    "face_keypoints_2d": ("face", FACE_POINTS),
    "hand_left_keypoints_2d": ("left_hand", HAND_POINTS),
    "hand_right_keypoints_2d": ("right_hand", HAND_POINTS),
}


def empty(points: int) -> np.ndarray:
    """A keypoint array (points × 3: x, y, confidence) with every point missing."""
    return np.full((points, 3), np.nan, np.float32)


@dataclass
class Person:
    body: np.ndarray | None = None  # (18, 3) x, y in [0, 1], confidence
    left_hand: np.ndarray | None = None  # (21, 3)
    right_hand: np.ndarray | None = None  # (21, 3)
    face: np.ndarray | None = None  # (70, 3)

    def point(self, index: int) -> np.ndarray | None:
        """A body keypoint (x, y) or None when missing."""
        if self.body is None or np.isnan(self.body[index, 0]):
            return None
        return self.body[index, :2]


@dataclass
class PoseResult:
    people: list[Person] = field(default_factory=list)
    width: int = 512
    height: int = 512

    def to_json(self) -> dict[str, Any]:
        """OpenPose JSON: pixel coordinates, [0, 0, 0] for a missing point, null for no part."""
        scale = np.array([self.width, self.height, 1.0], np.float64)

        def flatten(points: np.ndarray | None) -> list[float] | None:
            if points is None:
                return None
            pixels = points.astype(np.float64) * scale
            pixels[np.isnan(pixels[:, 0])] = 0.0
            return [round(float(v), 3) for v in pixels.reshape(-1)]

        people = [
            {key: flatten(getattr(person, attr)) for key, (attr, _) in _PARTS.items()}
            for person in self.people
        ]
        return {"people": people, "canvas_width": self.width, "canvas_height": self.height}

    def fitted(self, width: int, height: int, mode: ResizeMode | str) -> PoseResult:
        """The pose moved onto a `width`×`height` canvas as a map is fitted there (resize modes):
        Just Resize stretches, Crop and Resize scales to cover and drops what falls outside, Resize
        and Fill scales to fit inside and centres it (the bands stay black)."""
        (nh, nw), (top, left) = fit_geometry((self.height, self.width), (height, width), mode)
        scale = np.array([nw / width, nh / height], np.float32)
        shift = np.array([left / width, top / height], np.float32)

        def move(points: np.ndarray | None) -> np.ndarray | None:
            if points is None:
                return None
            moved = points.copy()
            moved[:, :2] = points[:, :2] * scale + shift
            outside = np.any((moved[:, :2] < 0) | (moved[:, :2] > 1), axis=1)
            moved[outside] = np.nan  # cropped away
            return moved

        people = [Person(move(p.body), move(p.left_hand), move(p.right_hand), move(p.face)) for p in self.people]
        return PoseResult(people=people, width=width, height=height)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str | list) -> PoseResult:
        """Read OpenPose JSON (a dict, its text, or a one-element list as some editors write).

        Accepts pixel coordinates (OpenPose) and normalised ones (values all ≤ 1).
        """
        try:
            if isinstance(data, str):
                data = json.loads(data)
            if isinstance(data, list):
                if len(data) != 1:
                    raise KekongError("pose JSON: expected one pose object, got a list of "
                                      f"{len(data)}")
                data = data[0]
            width = int(data.get("canvas_width", 512))
            height = int(data.get("canvas_height", 512))
            if width <= 0 or height <= 0:
                raise KekongError(f"pose JSON: canvas size {width}x{height} is not positive")
            people = [_person_from_json(raw, width, height) for raw in data.get("people", [])]
        except KekongError:
            raise
        except (ValueError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise KekongError(f"pose JSON is malformed: {exc}") from exc
        return cls(people=people, width=width, height=height)


def _person_from_json(raw: dict[str, Any], width: int, height: int) -> Person:
    person = Person()
    for key, (attr, count) in _PARTS.items():
        values = raw.get(key)
        if not values:
            continue
        if len(values) != count * 3:
            raise KekongError(f"pose JSON: {key} has {len(values)} values, expected {count * 3}")
        points = np.asarray(values, np.float32).reshape(count, 3)
        present = points[:, 2] > 0
        normalised = bool(np.all(points[present, :2] <= 1.0))
        if not normalised:
            points[:, 0] /= width
            points[:, 1] /= height
        points[~present] = np.nan
        setattr(person, attr, points)
    return person

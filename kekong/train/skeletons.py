"""Plausible OpenPose-18 skeletons for the synthetic figures data (`kekong data figures`).

A skeleton is built by forward kinematics from the neck: bone lengths are fixed ratios of the
person's height (adult proportions, head ≈ 1/7.5 of the height), each limb's angle is drawn
within a pose family's limits (standing, walking, arms up, arms out, sitting, waving), and a
yaw squeezes the body's width as the person turns towards a side view, where the far eye and
ear are hidden. Keypoints are in pixels of the canvas; hidden ones are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Bone lengths as shares of the person's height (top of head to soles).
TORSO, SHOULDER, HIP = 0.30, 0.105, 0.075
UPPER_ARM, FOREARM, THIGH, SHIN = 0.165, 0.145, 0.24, 0.235
HEAD_RADIUS, HEAD_ABOVE_NECK = 0.068, 0.118
POSES = ("standing", "walking", "arms up", "arms out", "sitting", "waving")

# OpenPose body indices (kekong.detect.openpose.keypoints.BODY_NAMES).
NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = range(8)
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR = range(8, 18)
# The 12 limbs the pose bench scores: arms and legs in two bones each, and the four trunk lines.
LIMBS = ((NECK, R_SHOULDER), (R_SHOULDER, R_ELBOW), (R_ELBOW, R_WRIST), (NECK, L_SHOULDER),
         (L_SHOULDER, L_ELBOW), (L_ELBOW, L_WRIST), (NECK, R_HIP), (R_HIP, R_KNEE), (R_KNEE, R_ANKLE),
         (NECK, L_HIP), (L_HIP, L_KNEE), (L_KNEE, L_ANKLE))


@dataclass
class Skeleton:
    points: np.ndarray  # (18, 2) pixels, NaN where hidden
    height: float  # the person's height in pixels
    width_factor: float  # cos(yaw): 1 facing the camera, ≈ 0.2 seen from the side
    pose: str
    facing: float = 1.0  # +1: the face turns towards the image's right, −1 left (side views)

    def head_centre(self) -> np.ndarray:
        neck = self.points[NECK]
        return neck + np.array([self.turn * HEAD_RADIUS * 0.25, -HEAD_ABOVE_NECK]) * self.height

    @property
    def turn(self) -> float:
        """sin(yaw), signed: where the face points (−1 image left … +1 image right)."""
        return math.copysign(math.sqrt(max(0.0, 1 - self.width_factor ** 2)), self.facing)


def _direction(angle_deg: float, side: float) -> np.ndarray:
    """A unit vector `angle_deg` from straight down, opened towards `side` (−1 image left, +1 right)."""
    a = math.radians(angle_deg)
    return np.array([side * math.sin(a), math.cos(a)])


def _angles(pose: str, rng: np.random.Generator) -> dict[str, float]:
    """Limb angles (degrees from straight down, positive = away from the body's midline) and bends."""
    u = rng.uniform
    arms = {"standing": (u(4, 30), u(4, 30)), "walking": (u(-30, 35), u(-30, 35)),
            "arms up": (u(115, 170), u(115, 170)), "arms out": (u(70, 105), u(70, 105)),
            "sitting": (u(5, 40), u(5, 40)), "waving": (u(4, 30), u(120, 165))}[pose]
    if pose == "waving" and rng.random() < 0.5:
        arms = arms[::-1]
    # A raised arm bends little (a forearm hanging down from a raised elbow is not "arms up").
    bends = tuple(u(0, 45) if angle > 100 else u(0, 30) if pose in ("standing", "arms out") else u(0, 110)
                  for angle in arms)
    legs = {"standing": (u(2, 14), u(2, 14)), "walking": (u(-28, 28), u(-28, 28)),
            "arms up": (u(2, 16), u(2, 16)), "arms out": (u(4, 20), u(4, 20)),
            "sitting": (u(70, 100), u(70, 100)), "waving": (u(2, 14), u(2, 14))}[pose]
    knees = (u(70, 100), u(70, 100)) if pose == "sitting" else (u(0, 12), u(0, 12)) if pose != "walking" \
        else (u(0, 35), u(0, 35))
    return {"r_arm": arms[0], "l_arm": arms[1], "r_elbow": bends[0] * rng.choice([-1, 1]),
            "l_elbow": bends[1] * rng.choice([-1, 1]), "r_leg": legs[0], "l_leg": legs[1],
            "r_knee": knees[0], "l_knee": knees[1], "lean": u(-8, 8)}


def random_skeleton(rng: np.random.Generator, neck: tuple[float, float], height: float,
                    pose: str | None = None) -> Skeleton:
    """One person whose neck is at `neck` (pixels) and who is `height` px tall."""
    pose = pose or POSES[rng.integers(len(POSES))]
    a = _angles(pose, rng)
    side_view = (pose in ("walking", "sitting") and rng.random() < 0.6) or rng.random() < 0.15
    width = float(rng.uniform(0.15, 0.35) if side_view else rng.uniform(0.75, 1.0))
    facing = float(rng.choice([-1.0, 1.0]))
    h = height
    p = np.full((18, 2), np.nan)
    p[NECK] = neck
    lean = math.radians(a["lean"])
    mid_hip = p[NECK] + np.array([math.sin(lean), math.cos(lean)]) * TORSO * h
    # The person's right is on the image's left when they face the camera.
    for shoulder, hip, side in ((R_SHOULDER, R_HIP, -1.0), (L_SHOULDER, L_HIP, 1.0)):
        p[shoulder] = p[NECK] + np.array([side * SHOULDER * h * width, 0.0])
        p[hip] = mid_hip + np.array([side * HIP * h * width, 0.0])
    # Front views: limbs open out to their own side. Side views: they swing forwards (the way the
    # person faces, positive angles) and back, and elbows and knees bend the way real ones do.
    for shoulder, elbow, wrist, key, side in ((R_SHOULDER, R_ELBOW, R_WRIST, "r", -1.0),
                                              (L_SHOULDER, L_ELBOW, L_WRIST, "l", 1.0)):
        s, bend = (facing, abs(a[f"{key}_elbow"])) if side_view else (side, a[f"{key}_elbow"])
        p[elbow] = p[shoulder] + _direction(a[f"{key}_arm"], s) * UPPER_ARM * h
        p[wrist] = p[elbow] + _direction(a[f"{key}_arm"] + bend, s) * FOREARM * h
    for hip, knee, ankle, key, side in ((R_HIP, R_KNEE, R_ANKLE, "r", -1.0), (L_HIP, L_KNEE, L_ANKLE, "l", 1.0)):
        if side_view:
            p[knee] = p[hip] + _direction(a[f"{key}_leg"], facing) * THIGH * h
            p[ankle] = p[knee] + _direction(a[f"{key}_leg"] - a[f"{key}_knee"], facing) * SHIN * h
        elif pose == "sitting":  # seen from the front the thighs come towards the camera: short
            p[knee] = p[hip] + _direction(rng.uniform(5, 25), side) * THIGH * h * rng.uniform(0.25, 0.45)
            p[ankle] = p[knee] + _direction(rng.uniform(0, 12), side) * SHIN * h
        else:
            p[knee] = p[hip] + _direction(a[f"{key}_leg"], side) * THIGH * h
            p[ankle] = p[knee] + _direction(a[f"{key}_leg"] - a[f"{key}_knee"] * 0.3, side) * SHIN * h
    skeleton = Skeleton(p, h, width, pose, facing)
    _place_head(skeleton)
    return skeleton


def _place_head(skeleton: Skeleton) -> None:
    p, h, w, turn = skeleton.points, skeleton.height, skeleton.width_factor, skeleton.turn
    centre = skeleton.head_centre()
    r = HEAD_RADIUS * h
    p[NOSE] = centre + np.array([0.75 * r * turn, 0.2 * r])
    for eye, ear, side in ((R_EYE, R_EAR, -1.0), (L_EYE, L_EAR, 1.0)):
        p[eye] = centre + np.array([(0.38 * side * w + 0.55 * turn) * r, -0.15 * r])
        p[ear] = centre + np.array([(0.95 * side * w + 0.25 * turn) * r, 0.0])
    if w < 0.45:  # seen from the side: the far eye and ear are behind the head
        far = (R_EYE, R_EAR) if turn > 0 else (L_EYE, L_EAR)
        p[list(far)] = np.nan


def extent(skeleton: Skeleton) -> tuple[float, float, float, float]:
    """The person's bounding box (x0, y0, x1, y1) in pixels, head and limb volume included."""
    points = skeleton.points[~np.isnan(skeleton.points[:, 0])]
    centre, r = skeleton.head_centre(), HEAD_RADIUS * skeleton.height * 1.1
    pad = 0.06 * skeleton.height
    x0 = min(points[:, 0].min() - pad, centre[0] - r)
    x1 = max(points[:, 0].max() + pad, centre[0] + r)
    y0 = min(points[:, 1].min() - pad, centre[1] - r)
    y1 = points[:, 1].max() + pad
    return float(x0), float(y0), float(x1), float(y1)

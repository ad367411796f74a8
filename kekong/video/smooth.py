"""Pose keypoints smoothed across frames with the One-Euro filter (Casiez, Roussel & Vogel, CHI 2012):
a low-pass filter whose cutoff rises with speed, so jitter at rest is removed and fast motion
is followed with little lag. A keypoint that goes missing restarts its filter when it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kekong.detect.openpose.keypoints import Person, PoseResult

D_CUTOFF = 1.0  # Hz: the derivative's own low-pass (the paper's default)
PARTS = ("body", "left_hand", "right_hand", "face")


def _alpha(cutoff: float, dt: float) -> float:
    """Smoothing factor of a first-order low-pass at `cutoff` Hz sampled every `dt` s."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuro:
    """One-Euro filter over an array of values (NaN = missing: that value restarts)."""

    min_cutoff: float = 1.0
    beta: float = 0.3
    value: np.ndarray | None = None
    speed: np.ndarray | None = None

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.value is None or self.value.shape != x.shape:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return x.copy()
        fresh = np.isnan(self.value) & ~np.isnan(x)  # came back: start again from it
        speed = np.where(np.isnan(x) | fresh, 0.0, (x - self.value) / dt)
        a_d = _alpha(D_CUTOFF, dt)
        self.speed = np.nan_to_num(a_d * speed + (1 - a_d) * self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        tau = 1.0 / (2 * math.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        out = np.where(fresh, x, a * x + (1 - a) * self.value)
        self.value = out  # a missing value stays missing (NaN) and restarts when seen again
        return out.copy()


@dataclass
class PoseSmoother:
    """Smooths each person's keypoints (people matched by order, as the detector sorts them)."""

    min_cutoff: float = 1.0
    beta: float = 0.3
    filters: dict[tuple[int, str], OneEuro] = field(default_factory=dict)

    def __call__(self, pose: PoseResult, dt: float) -> PoseResult:
        people = []
        for index, person in enumerate(pose.people):
            smoothed = Person()
            for part in PARTS:
                points = getattr(person, part)
                if points is None:
                    self.filters.pop((index, part), None)
                    continue
                one = self.filters.setdefault((index, part), OneEuro(self.min_cutoff, self.beta))
                out = points.astype(np.float32).copy()
                out[:, :2] = one(points[:, :2], dt).astype(np.float32)
                setattr(smoothed, part, out)
            people.append(smoothed)
        for key in [k for k in self.filters if k[0] >= len(pose.people)]:
            del self.filters[key]  # a person who left: a new one in that place starts fresh
        return PoseResult(people=people, width=pose.width, height=pose.height)

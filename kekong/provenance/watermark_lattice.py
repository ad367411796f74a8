"""Finding the watermark tile's lattice in an image from the autocorrelation of its fine detail.

The mark repeats one tile over the image, so the autocorrelation of the whitened detail has peaks
at the tile's lattice vectors and their sums and multiples. The plain search (`periods`) looks for
a square, axis-aligned lattice of unknown period: the image may have been resized or cropped.
The geometry search (`geometries`) also lets the lattice be rotated (up to ±MAX_ANGLE degrees)
or stretched along one axis (aspect up to ±MAX_ASPECT): it scores each of those lattice shapes
the same way and returns the few that stand out from the picture's own correlation.

A lattice shape is a 2×2 matrix `basis` (columns: the tile's two sides for a period of 1, in
(x, y) pixel coordinates); the lattice points are period · basis · (i, j). A flip or a quarter
turn leaves the lattice as it was (the reader tries those on the folded tile instead)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

MAX_ANGLE = 6.0  # degrees either way
ANGLE_STEP = 0.25  # degrees: at 3 tile periods (384 px) 0.125° off is < 1 px off a peak
MAX_ASPECT = 1.14  # height/width stretch either way
ASPECT_STEP = 0.005  # likewise: 0.25% of 384 px is 1 px
NEAR = 0.15  # relative period window around the nominal period searched for turns and stretches
PLAIN_ANGLE, PLAIN_ASPECT = 0.4, 0.006  # within these the plain reading's fold already holds
SCORE_FLOOR = 1e-3  # of the autocorrelation at lag 0: what flat images' scatter is measured against
_MULTIPLES = 3  # lattice peaks used along each line: at P, 2P, 3P


def autocorrelation(detail: np.ndarray) -> np.ndarray:
    """The linear (zero-padded) autocorrelation of `detail`, lag (0, 0) at [0, 0]; negative lags wrap."""
    height, width = detail.shape
    padded = np.zeros((cv2.getOptimalDFTSize(2 * height), cv2.getOptimalDFTSize(2 * width)), np.float32)
    padded[:height, :width] = detail - detail.mean()
    spectrum = cv2.dft(padded, flags=cv2.DFT_COMPLEX_OUTPUT)  # float32 DFT: half numpy's time at 1024²
    return cv2.idft(cv2.mulSpectrums(spectrum, spectrum, 0, conjB=True), flags=cv2.DFT_REAL_OUTPUT)


def _sharp(line: np.ndarray) -> np.ndarray:
    """Keep only sharp peaks: the picture's own correlation changes slowly with the lag."""
    ring = np.ones(25)
    ring[9:16] = 0
    return line - np.convolve(line, ring / ring.sum(), mode="same")


def _sampled_profiles(acf: np.ndarray, shape: tuple[int, int], bases: list[np.ndarray], step: int) -> np.ndarray:
    """`_profiles` for many lattice shapes at once, summed over the four lines, bilinear at
    fractional lags every `step` pixels (zero beyond the image's extent): (shapes, lags / step)."""
    count = min(shape) // step
    lags = np.arange(count, dtype=np.float64) * step
    directions = np.array([[b[:, 0], b[:, 1], b[:, 0] + b[:, 1], b[:, 0] - b[:, 1]] for b in bases])  # (S, 4, 2)
    xs = (directions[..., 0, None] * lags).reshape(-1, count).astype(np.float32)
    ys = (directions[..., 1, None] * lags).reshape(-1, count).astype(np.float32)
    lines = cv2.remap(acf, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    lines[(np.abs(ys) >= shape[0] - 1) | (np.abs(xs) >= shape[1] - 1)] = 0.0
    ring = np.ones(25, np.float32)
    ring[9:16] = 0
    lines /= acf[0, 0] + 1e-12
    smooth = cv2.filter2D(lines, -1, (ring / ring.sum())[None, :], borderType=cv2.BORDER_CONSTANT)
    return (lines - smooth).reshape(len(bases), 4, count).sum(axis=1)


def _profiles(acf: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """The autocorrelation along the square axis-aligned lattice's four lines (both sides and both
    diagonals), one value per pixel of lag, sharpened."""
    lags = np.arange(min(shape))
    lines = [acf[lags, 0], acf[0, lags], acf[lags, lags], acf[lags, -lags]]
    return [_sharp(line / (acf[0, 0] + 1e-12)) for line in lines]


def _score(profiles: list[np.ndarray], grid: np.ndarray) -> np.ndarray:
    """Mean sharpened autocorrelation at 1, 2 and 3 periods along every line, per period on `grid`."""
    size = profiles[0].size
    lags = np.arange(size)
    multiples = np.arange(1, _MULTIPLES + 1)[:, None] * grid[None, :]
    inside = multiples < size - 1
    total, used = np.zeros_like(grid), np.zeros_like(grid)
    for profile in profiles:
        total += np.where(inside, np.interp(multiples, lags, profile), 0).sum(0)
        used += inside.sum(0)
    return total / np.maximum(used, 1)


def _scores(profiles: np.ndarray, grid: np.ndarray, step: int) -> np.ndarray:
    """`_score` for many shapes' summed profiles (shapes, lags / step) at once: (shapes, periods)."""
    count = profiles.shape[-1]
    multiples = np.arange(1, _MULTIPLES + 1)[:, None] * grid[None, :] / step  # (3, periods), in samples
    inside = multiples < count - 1
    index = np.minimum(np.floor(multiples).astype(np.int64), count - 2)
    frac = (multiples - index).astype(np.float32)
    values = profiles[:, index] * (1 - frac) + profiles[:, index + 1] * frac  # (shapes, 3, periods)
    used = 4 * inside.sum(0)
    return (values * inside).sum(axis=1) / np.maximum(used, 1)


def _refine(score: np.ndarray, index: int, step: float) -> float:
    """Sub-step offset of a peak from a parabola through it and its neighbours."""
    left, mid, right = score[index - 1: index + 2]
    bend = left - 2 * mid + right
    return float(np.clip(0.5 * step * (left - right) / bend, -step / 2, step / 2)) if bend < 0 else 0.0


def periods(acf: np.ndarray, shape: tuple[int, int], low: float, high: float, count: int) -> list[float]:
    """Candidate periods of a square, axis-aligned tile, best first. The biased (not
    overlap-normalised) autocorrelation is used on purpose: it falls with the lag, so the true
    period outscores its own multiples."""
    grid = np.arange(low, high, 0.25)
    return _peaks(_score(_profiles(acf, shape), grid), grid, count)


@dataclass(frozen=True)
class Geometry:
    """A lattice hypothesis: the tile's shape and period."""

    basis: np.ndarray  # 2×2, columns: the tile's sides per unit period, (x, y)
    angle: float  # degrees, counter-clockwise in the image as shown
    aspect: float  # second side's length over the first's
    period: float  # pixels along the first side
    strength: float  # its autocorrelation score (`near`) or how far it stands out (`standing_out`)


def rotation(angle: float) -> np.ndarray:
    """Basis of a lattice turned by `angle` degrees (as PIL's rotate turns an image: counter-clockwise
    as shown, y pointing down)."""
    theta = np.radians(angle)
    return np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])


def stretch(aspect: float) -> np.ndarray:
    """Basis of a lattice whose vertical side is `aspect` times its horizontal one."""
    return np.array([[1.0, 0.0], [0.0, aspect]])


def _shapes() -> list[tuple[float, float]]:
    """(angle, aspect) of every lattice shape searched: turns, then stretches (the plain square one
    is among the turns, for the neighbours' sake, and never returned)."""
    steps = round(MAX_ANGLE / ANGLE_STEP)
    angles = [(ANGLE_STEP * k, 1.0) for k in range(-steps, steps + 1)]
    top = round(np.log(MAX_ASPECT) / np.log1p(ASPECT_STEP))
    aspects = [(0.0, float((1 + ASPECT_STEP) ** k)) for k in range(-top, top + 1) if k]
    return angles + aspects


SHAPES = _shapes()


class LatticeSearch:
    """Every turned or stretched lattice shape in SHAPES scored at every period in [low, high)."""

    def __init__(self, acf: np.ndarray, shape: tuple[int, int], low: float, high: float):
        self.grid = np.arange(low, max(high, low + 1), 0.25)
        # from 1024 px up a kekong image's chips (and peaks) are ≥ 8 px: every other lag will do
        self.step = min(shape) // 512 if min(shape) >= 1024 else 1
        self.profiles = _sampled_profiles(acf, shape, [_basis(a, r) for a, r in SHAPES], self.step)
        self._scores: np.ndarray | None = None

    @property
    def scores(self) -> np.ndarray:
        """(shapes, periods) over the whole grid, computed on first use (`near` needs only its window)."""
        if self._scores is None:
            self._scores = _scores(self.profiles, self.grid, self.step)
        return self._scores

    def _geometry(self, row: int, index: int, strength: float) -> Geometry:
        angle, aspect = _refine_shape(self.scores, row, index, *SHAPES[row])
        period = float(self.grid[index])
        if 0 < index < self.grid.size - 1:
            period += _refine(self.scores[row], index, 0.25)
        return Geometry(_basis(angle, aspect), angle, aspect, period, strength)

    def _distinct(self, rows: np.ndarray, pick: Callable[[int], Geometry], count: int) -> list[Geometry]:
        """Up to `count` geometries from `rows` (best first), skipping the plain lattice (the
        plain reading tried it) and close neighbours of a shape already taken."""
        found: list[Geometry] = []
        for row in rows:
            if len(found) == count:
                break
            angle, aspect = SHAPES[row]
            if abs(angle) < PLAIN_ANGLE and abs(np.log(aspect)) < PLAIN_ASPECT:
                continue
            if any(abs(g.angle - angle) < 2.5 * ANGLE_STEP and abs(np.log(g.aspect / aspect)) < 2.5 * ASPECT_STEP
                   for g in found):
                continue
            found.append(pick(row))
        return found

    def near(self, nominal: float, turns: int, stretches: int) -> list[Geometry]:
        """The best `turns` turned and `stretches` stretched shapes, scored at the period their
        edit leaves: a turn keeps the nominal period, a stretch keeps it along one side (which
        one is not known: both are scored). No bar: the folded tile's pilot and the CRC decide."""
        is_turn = np.array([aspect == 1 for _, aspect in SHAPES])
        aspects = np.array([aspect for _, aspect in SHAPES])
        grid = np.concatenate([[nominal], nominal / aspects[~is_turn]])
        scores = _scores(self.profiles, grid, self.step)
        keeps_first = scores[:, 0]  # the period along the first side is the nominal one
        keeps_second = np.full(len(SHAPES), -np.inf)  # along the second side
        keeps_second[~is_turn] = scores[np.flatnonzero(~is_turn), 1 + np.arange((~is_turn).sum())]
        best = np.maximum(keeps_first, keeps_second)

        def pick(row: int) -> Geometry:
            angle, aspect = SHAPES[row]
            if aspect == 1:
                angle, _ = _refine_shape(keeps_first[:, None], row, 0, angle, aspect)
            period = nominal if keeps_first[row] >= keeps_second[row] else nominal / aspect
            return Geometry(_basis(angle, aspect), angle, aspect, float(period), float(best[row]))

        order = np.argsort(-best)
        return self._distinct(order[is_turn[order]], pick, turns) + \
            self._distinct(order[~is_turn[order]], pick, stretches)

    def standing_out(self, count: int, away_from: float) -> list[Geometry]:
        """The `count` shapes whose best peak away from the nominal period stands out most: a
        robust z against all shapes' best (the picture's own structure lifts every shape alike, a
        turned or stretched tile lifts one), kept as the geometry's strength."""
        away = np.abs(self.grid / away_from - 1) > NEAR
        if not away.any():
            return []
        scores = np.where(away[None, :], self.scores, -np.inf)
        peak = scores.max(axis=1)
        centre = np.median(peak)
        z = (peak - centre) / (1.4826 * np.median(np.abs(peak - centre)) + SCORE_FLOOR)

        return self._distinct(np.argsort(-z), lambda row: self._geometry(row, int(np.argmax(scores[row])),
                                                                          float(z[row])), count)


def _peaks(score: np.ndarray, grid: np.ndarray, count: int) -> list[float]:
    found: list[float] = []
    for index in np.argsort(-score):
        if len(found) == count:
            break
        if 0 < index < grid.size - 1 and score[index] >= score[index - 1] and score[index] >= score[index + 1] \
                and all(abs(grid[index] - f) > 2 for f in found):
            found.append(float(grid[index] + _refine(score, index, 0.25)))
    return found


def _basis(angle: float, aspect: float) -> np.ndarray:
    return rotation(angle) @ stretch(aspect)


def _refine_shape(scores: np.ndarray, row: int, index: int, angle: float, aspect: float) -> tuple[float, float]:
    """The angle (or aspect) between searched steps, from the neighbouring shapes' scores."""
    if not 0 < row < len(SHAPES) - 1:
        return angle, aspect
    (before_angle, before_aspect), (after_angle, after_aspect) = SHAPES[row - 1], SHAPES[row + 1]
    if aspect == 1.0 and not (np.isclose(angle - before_angle, ANGLE_STEP)
                              and np.isclose(after_angle - angle, ANGLE_STEP) and before_aspect == after_aspect == 1.0):
        return angle, aspect
    if aspect != 1.0 and not (np.isclose(aspect / before_aspect, 1 + ASPECT_STEP)
                              and np.isclose(after_aspect / aspect, 1 + ASPECT_STEP)):
        return angle, aspect
    column = scores[[row - 1, row, row + 1], index]
    if aspect == 1.0:
        return angle + _refine(column, 1, ANGLE_STEP), aspect
    return angle, aspect * (1 + ASPECT_STEP) ** (_refine(column, 1, 1.0))

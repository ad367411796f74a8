"""Warp a photo to an edited pose: moving-least-squares deformation with the OpenPose keypoints as handles.

Schaefer, McPhail and Warren, "Image Deformation Using Moving Least Squares" (SIGGRAPH 2006). Each
output point gets its own best transformation of the handles (weights 1/|p_i - v|^(2α)): affine,
similarity (rotation + uniform scale) or rigid (rotation alone). Points are complex numbers here, so a
similarity is one complex factor and a rigid map its unit-modulus part.

The image is sampled backwards (cv2.remap needs, for each output pixel, where to read): the MLS map
from the edited handles to the original ones, which sends each edited handle exactly onto its original
point. It is computed on a coarse grid (GRID_NODES along the long side), interpolated bilinearly
(align-corners) and made exact again at the handles, then remapped.
Handles: every keypoint present (confidence > 0) in both poses, points along each bone and hand edge,
fixed points on the image border, and any pins.

Uncovered areas (the mask): output pixels that read from outside the image, that the inverse map
stretches (area ratio below STRETCH: the picture there is smeared, e.g. where a limb moved away), or
where the forward map does not bring the read point back (folds: the backward map is only an
approximate inverse there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from kekong.detect.openpose.keypoints import PoseResult
from kekong.detect.openpose.render import HAND_EDGES, LIMBS
from kekong.errors import KekongError

Mode = Literal["rigid", "similarity", "affine"]
MODES: tuple[str, ...] = ("rigid", "similarity", "affine")
ALPHA = 1.0  # weight falloff exponent (the paper's α)
GRID_NODES = 128  # coarse grid intervals along the long side (4 px apart at 512²; never under 2 px)
BORDER_HANDLES = 16  # fixed handles per image side
BONE_STEPS = 7  # handles inside each body bone, evenly spaced (a limb moves as a bar: with 3 a turned forearm
#                bends up to 12 px between them where other handles pull; with 7, under 2 px; tests/test_warp.py)
HAND_STEPS = 3  # … inside each finger bone, and each body bone in affine mode (an affine fit to near-collinear
#                handles is near-singular: beside a densely held bone it shears, 2 px off at the joints)
STRETCH = 0.5  # inverse-map area ratio below which an output area counts as uncovered
FOLD_TOLERANCE = 0.03  # round-trip error (fraction of the long side) beyond which content counts as misplaced
ASPECT_TOLERANCE = 0.02  # relative aspect difference allowed between a pose canvas and the image


@dataclass
class WarpResult:
    image: np.ndarray  # H×W×C uint8, the warped picture
    mask: np.ndarray  # H×W uint8, 255 where the warp uncovered the picture
    handles: int  # how many handles moved or held the picture (border and pins included)


# --- moving least squares -----------------------------------------------------------------------------


def mls(points: np.ndarray, source: np.ndarray, target: np.ndarray, mode: Mode = "rigid",
        alpha: float = ALPHA) -> np.ndarray:
    """The MLS deformation of `points` (M×2) for handles moved from `source` to `target` (N×2 each).

    The weighted sums over handles, Σ w p̂* q̂ and the like, are expanded (Σ w p̄q − p̄* q*, the weights
    summing to one), so each is one M×N by N×k product."""
    if mode not in MODES:
        raise KekongError(f"warp mode {mode!r} is not one of {', '.join(MODES)}")
    v = points[:, 0] + 1j * points[:, 1]  # (M,)
    p = source[:, 0] + 1j * source[:, 1]  # (N,)
    q = target[:, 0] + 1j * target[:, 1]
    d2 = (points[:, :1] - source[None, :, 0]) ** 2 + (points[:, 1:] - source[None, :, 1]) ** 2  # (M, N)
    on_handle = d2 < 1e-12
    w = 1.0 / np.maximum(d2, 1e-12) if alpha == 1 else 1.0 / np.maximum(d2, 1e-12) ** alpha
    hit = on_handle.any(axis=1)
    if hit.any():
        w[hit] = on_handle[hit]  # a point on a handle follows it exactly
    w /= w.sum(axis=1, keepdims=True)
    sums = w @ np.stack([p, q, np.conj(p) * q, np.abs(p) ** 2], axis=1)  # (M, 4)
    p_star, q_star = sums[:, 0], sums[:, 1]
    c = sums[:, 2] - np.conj(p_star) * q_star  # Σ w conj(p̂) q̂: the best similarity's factor, unnormalised
    r = v - p_star
    if mode == "affine":
        out = _affine(r, w, source, target, p_star, q_star) + q_star
    elif mode == "similarity":
        mu = sums[:, 3].real - np.abs(p_star) ** 2  # Σ w |p̂|²
        out = r * (c / np.maximum(mu, 1e-12)) + q_star
    else:
        modulus = np.abs(c)
        out = r * np.where(modulus > 1e-12, c / np.maximum(modulus, 1e-12), 1.0) + q_star
    return np.stack([out.real, out.imag], axis=1)


def _affine(r: np.ndarray, w: np.ndarray, source: np.ndarray, target: np.ndarray, p_star: np.ndarray,
            q_star: np.ndarray) -> np.ndarray:
    """r (M,) times the weighted least-squares affine matrix of p̂ → q̂, per point."""
    px, py, qx, qy = source[:, 0], source[:, 1], target[:, 0], target[:, 1]
    s = w @ np.stack([px * px, px * py, py * py, px * qx, px * qy, py * qx, py * qy], axis=1)  # (M, 7)
    sx, sy, tx, ty = p_star.real, p_star.imag, q_star.real, q_star.imag
    a, b, d = s[:, 0] - sx * sx, s[:, 1] - sx * sy, s[:, 2] - sy * sy  # Σ w p̂ᵀp̂ = [[a b] [b d]]
    m00, m01, m10, m11 = s[:, 3] - sx * tx, s[:, 4] - sx * ty, s[:, 5] - sy * tx, s[:, 6] - sy * ty  # Σ w p̂ᵀq̂
    det = a * d - b * b
    det = np.where(np.abs(det) > 1e-9, det, 1e-9)
    rx, ry = r.real, r.imag
    ux, uy = (rx * d - ry * b) / det, (ry * a - rx * b) / det  # r (Σ w p̂ᵀp̂)⁻¹
    return (ux * m00 + uy * m10) + 1j * (ux * m01 + uy * m11)


def _upsample_matrix(nodes: int, size: int) -> np.ndarray:
    """size × nodes linear interpolation from nodes at linspace(0, size-1, nodes) onto every pixel."""
    positions = np.linspace(0, nodes - 1, size)
    low = np.minimum(np.floor(positions).astype(int), nodes - 2) if nodes > 1 else np.zeros(size, int)
    frac = positions - low
    matrix = np.zeros((size, nodes), np.float32)
    matrix[np.arange(size), low] = 1 - frac
    if nodes > 1:
        matrix[np.arange(size), low + 1] += frac
    return matrix


def backward_map(hw: tuple[int, int], source: np.ndarray, target: np.ndarray, mode: Mode = "rigid",
                 step: int | None = None) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(map_x, map_y) for cv2.remap of the warp moving `source` to `target` on an h×w image, and what the
    uncovered-area check needs (the coarse grid, where its nodes read, the upsampling matrices)."""
    h, w = hw
    step = step or max(2, round(max(h, w) / GRID_NODES))
    gh, gw = max(2, -(-(h - 1) // step) + 1), max(2, -(-(w - 1) // step) + 1)
    ys, xs = np.linspace(0, h - 1, gh), np.linspace(0, w - 1, gw)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)  # (gh*gw, 2) output positions
    back = mls(grid, target, source, mode).reshape(gh, gw, 2)  # where each output node reads from
    node = grid.reshape(gh, gw, 2)
    back[:, [0, -1]], back[[0, -1]] = node[:, [0, -1]], node[[0, -1]]  # the frame reads from itself (held still)
    back = back.reshape(-1, 2)
    shift = (back - grid).reshape(gh, gw, 2).astype(np.float32)
    uy, ux = _upsample_matrix(gh, h), _upsample_matrix(gw, w)
    dense = np.stack([uy @ shift[..., k] @ ux.T for k in range(2)], axis=-1)
    _pin_handles(dense, source, target, step)
    map_x = (dense[..., 0] + np.arange(w)[None, :]).astype(np.float32)
    map_y = (dense[..., 1] + np.arange(h)[:, None]).astype(np.float32)
    return map_x, map_y, (grid, back, (gh, gw), uy, ux)


def warp_points(image: np.ndarray, source: np.ndarray, target: np.ndarray, mode: Mode = "rigid",
                step: int | None = None) -> WarpResult:
    """Warp `image` so the pixels at `source` (N×2, x, y in pixels) move to `target`; the caller adds
    whatever fixed handles it wants (see border_handles)."""
    h, w = image.shape[:2]
    map_x, map_y, (grid, back, grid_hw, uy, ux) = backward_map((h, w), source, target, mode, step)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = _uncovered(grid, back, source, target, mode, grid_hw, (h, w), uy, ux)
    return WarpResult(warped, mask, len(source))


def _bilinear(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """field (H×W×2) sampled at points (N×2, x, y inside it)."""
    h, w = field.shape[:2]
    x0 = np.clip(np.floor(points[:, 0]).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(points[:, 1]).astype(int), 0, h - 2)
    fx, fy = (points[:, 0] - x0)[:, None], (points[:, 1] - y0)[:, None]
    top = field[y0, x0] * (1 - fx) + field[y0, x0 + 1] * fx
    bottom = field[y0 + 1, x0] * (1 - fx) + field[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _pin_handles(dense: np.ndarray, source: np.ndarray, target: np.ndarray, step: int) -> None:
    """Make the interpolated map exact at the handles: what the grid's interpolation misses there is
    spread by Gaussian radial basis functions (σ = one grid step) that interpolate it at every handle."""
    h, w = dense.shape[:2]
    inside = (target[:, 0] >= 0) & (target[:, 0] <= w - 1) & (target[:, 1] >= 0) & (target[:, 1] <= h - 1)
    t, s = target[inside], source[inside]
    if not len(t):
        return
    residual = (s - t) - _bilinear(dense, t)
    sigma = float(step)
    kernel = np.exp(-((t[:, None] - t[None]) ** 2).sum(-1) / (2 * sigma**2))
    coef = np.linalg.solve(kernel + 1e-3 * np.eye(len(t)), residual)  # (N, 2)
    radius = int(np.ceil(3 * sigma))
    for (x, y), c in zip(t, coef, strict=True):
        x0, x1 = max(0, int(x) - radius), min(w, int(x) + radius + 2)
        y0, y1 = max(0, int(y) - radius), min(h, int(y) + radius + 2)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dense[y0:y1, x0:x1] += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))[..., None] * c


def _uncovered(grid: np.ndarray, back: np.ndarray, source: np.ndarray, target: np.ndarray, mode: Mode,
               grid_hw: tuple[int, int], hw: tuple[int, int], uy: np.ndarray, ux: np.ndarray) -> np.ndarray:
    """Output areas without a faithful source: read outside the image, stretched, or folded (nodes, upsampled)."""
    (gh, gw), (h, w) = grid_hw, hw
    b = back.reshape(gh, gw, 2)
    outside = (b[..., 0] < -0.5) | (b[..., 0] > w - 0.5) | (b[..., 1] < -0.5) | (b[..., 1] > h - 0.5)
    dy, dx = (h - 1) / (gh - 1), (w - 1) / (gw - 1)
    jx = np.gradient(b, dx, axis=1)  # ∂(source)/∂x_out, per component
    jy = np.gradient(b, dy, axis=0)
    area = jx[..., 0] * jy[..., 1] - jx[..., 1] * jy[..., 0]
    there_and_back = mls(back, source, target, mode).reshape(gh, gw, 2)
    folded = np.hypot(*(there_and_back - grid.reshape(gh, gw, 2)).transpose(2, 0, 1)) > FOLD_TOLERANCE * max(h, w)
    bad = (outside | (area < STRETCH) | folded).astype(np.float32)
    return np.where(uy @ bad @ ux.T > 0.25, 255, 0).astype(np.uint8)


# --- pose handles ----------------------------------------------------------------------------------


def border_handles(width: int, height: int, per_side: int = BORDER_HANDLES) -> np.ndarray:
    """Fixed points along the image border (corners included), so the frame stays where it is."""
    xs, ys = np.linspace(0, width - 1, per_side + 1), np.linspace(0, height - 1, per_side + 1)
    top = np.stack([xs, np.zeros_like(xs)], 1)
    bottom = np.stack([xs, np.full_like(xs, height - 1)], 1)
    left = np.stack([np.zeros_like(ys[1:-1]), ys[1:-1]], 1)
    right = np.stack([np.full_like(ys[1:-1], width - 1), ys[1:-1]], 1)
    return np.concatenate([top, bottom, left, right])


def _part_handles(a: np.ndarray | None, b: np.ndarray | None, edges: tuple[tuple[int, int], ...],
                  scale: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints present in both parts (pixels), and `steps` points along each edge present in both: each
    bone carried whole, as Schaefer et al.'s line-segment handles carry it."""
    if a is None or b is None:
        return np.zeros((0, 2)), np.zeros((0, 2))
    a, b = a[:, :2] * scale, b[:, :2] * scale
    both = ~np.isnan(a[:, 0]) & ~np.isnan(b[:, 0])
    src, dst = [a[both]], [b[both]]
    for i, j in edges:
        if not (both[i] and both[j]):
            continue
        t = np.linspace(0, 1, steps + 2)[1:-1, None]
        src.append(a[i] + t * (a[j] - a[i]))
        dst.append(b[i] + t * (b[j] - b[i]))
    return np.concatenate(src).astype(np.float64), np.concatenate(dst).astype(np.float64)


BODY_EDGES = tuple((i - 1, j - 1) for i, j in LIMBS[:13])  # limbs and torso (not the face lines)
NO_EDGES: tuple[tuple[int, int], ...] = ()


def pose_handles(before: PoseResult, after: PoseResult, width: int, height: int, bone_steps: int = BONE_STEPS,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Handle pairs (pixels on a width×height image) from two poses of the same people, in order."""
    if len(before.people) != len(after.people):
        raise KekongError(f"the poses differ in people: {len(before.people)} in the original, "
                          f"{len(after.people)} in the edited one (warp needs the same people, in order)")
    for name, pose in (("original", before), ("edited", after)):
        if abs(pose.width / pose.height - width / height) > ASPECT_TOLERANCE * width / height:
            raise KekongError(f"the {name} pose's canvas {pose.width}x{pose.height} has another shape than "
                              f"the image ({width}x{height})")
    src, dst = [np.zeros((0, 2))], [np.zeros((0, 2))]
    scale = np.array([width, height], np.float64)
    for a, b in zip(before.people, after.people, strict=True):
        for part, edges, steps in (("body", BODY_EDGES, bone_steps), ("left_hand", HAND_EDGES, HAND_STEPS),
                                   ("right_hand", HAND_EDGES, HAND_STEPS), ("face", NO_EDGES, 0)):
            s, d = _part_handles(getattr(a, part), getattr(b, part), edges, scale, steps)
            src.append(s)
            dst.append(d)
    return np.concatenate(src), np.concatenate(dst)


def warp_pose(image: np.ndarray, before: PoseResult, after: PoseResult, mode: Mode = "rigid",
              pins: list[tuple[float, float]] | None = None, step: int | None = None, layered: bool = False,
              person_mask: np.ndarray | None = None) -> WarpResult:
    """Warp a photo whose people stand as in `before` so they stand as in `after` (same people, in
    order; keypoints missing in either are ignored). The border and any `pins` (x, y pixels) stay put.
    `layered`: each limb the edit turns moves as a layer of its own over the rest (warp_layers.py),
    cut out within `person_mask` (H×W, > 0.5 on people) when given."""
    h, w = image.shape[:2]
    src, dst = pose_handles(before, after, w, h, HAND_STEPS if mode == "affine" else BONE_STEPS)
    if len(src) == 0:
        raise KekongError("the two poses share no keypoint: nothing to move")
    for x, y in pins or []:
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            raise KekongError(f"pin {x:g},{y:g} is outside the {w}x{h} image")
    fixed = np.concatenate([border_handles(w, h), np.asarray(pins or [], np.float64).reshape(-1, 2)])
    if layered:
        from kekong.detect.openpose.warp_layers import layers

        found, rest_before, rest_after = layers(before, after, (h, w), person_mask)
        if found:
            return _layered(image, found, rest_before, rest_after, fixed, mode, step)
    src, dst = _drop_duplicates(np.concatenate([src, fixed]), np.concatenate([dst, fixed]))
    return warp_points(image, src, dst, mode, step)


def _layered(image: np.ndarray, found: list, rest_before: PoseResult, rest_after: PoseResult, fixed: np.ndarray,
             mode: Mode, step: int | None) -> WarpResult:
    """The background warped by the handles left when the moved limbs are taken out, the limbs laid over it."""
    from kekong.detect.openpose.warp_layers import composite

    h, w = image.shape[:2]
    steps = HAND_STEPS if mode == "affine" else BONE_STEPS
    src, dst = pose_handles(rest_before, rest_after, w, h, steps)
    src, dst = _drop_duplicates(np.concatenate([src, fixed]), np.concatenate([dst, fixed]))
    map_x, map_y, (grid, back, grid_hw, uy, ux) = backward_map((h, w), src, dst, mode, step)
    background = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = _uncovered(grid, back, src, dst, mode, grid_hw, (h, w), uy, ux) > 0
    placed, handles = [], len(src)
    for layer in found:
        a = PoseResult([layer.before], rest_before.width, rest_before.height)
        b = PoseResult([layer.after], rest_after.width, rest_after.height)
        ls, ld = _drop_duplicates(*pose_handles(a, b, w, h, BONE_STEPS))
        lx, ly, _ = backward_map((h, w), ls, ld, "rigid" if mode == "rigid" else "similarity", step)
        placed.append((layer, (lx, ly)))
        handles += len(ls)
    picture, uncovered = composite(background, (map_x, map_y), image, placed)
    return WarpResult(picture, np.where(mask | uncovered, 255, 0).astype(np.uint8), handles)


def _drop_duplicates(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One handle per target point (two handles on one target with different sources cannot both hold)."""
    _, keep = np.unique(np.round(dst, 3), axis=0, return_index=True)
    keep.sort()
    return src[keep], dst[keep]

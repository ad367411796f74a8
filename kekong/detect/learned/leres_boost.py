"""BoostingMonocularDepth's pipeline as `depth_leres++` runs it (the annotator's `estimateboost`
with LeReS, receptive field 448, merge size 1024, R_max 1600, R_x at x = 0.2):

1. R_x: the largest resolution (steps of 224 from 448, up to 3× the image and 1600) at which edges
   dilated by the receptive field still leave no more than 20 % of the picture without context.
2. Double estimate: the depth at 448 and at R_x, merged by the pix2pix network (low → detail).
3. When the image is at least R_x wide (`max_res`, the processor image's longer side), local
   refinement: the image is upscaled, patches of 896 px whose gradient density is above the
   whole image's are grown until it falls, and each patch's double estimate is merged into
   the base estimate (linear fit to it, Gaussian-feathered paste), largest patches first.

`estimate(image, size)` is LeReS at size×size; `merge(low, high)` the merge network on two
1024² estimates (each min-max scaled to [−1, 1] first), answering in [0, 1]. Faithful to the
annotator's quirks (bilinear where its `cv2.resize` passed an interpolation flag as `dst`;
the base estimate, not the updated one, is what each patch is fitted to).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np
from skimage.measure import block_reduce

Estimate = Callable[[np.ndarray, int], np.ndarray]
Merge = Callable[[np.ndarray, np.ndarray], np.ndarray]

RECEPTIVE_FIELD = 448  # LeReS
MERGE_SIZE = 1024  # pix2pixsize
WHOLE_SIZE_THRESHOLD = 1600  # R_max
SPEED_SCALE = 32
CONFIDENCE = 0.2  # x of R_x
SCALE_THRESHOLD = 3  # at most 3× upscaling


@lru_cache(maxsize=1)
def gaussian_mask(size: int) -> np.ndarray:
    """The feathering mask: ones inside a 15 % margin, Gaussian-blurred, scaled to [0, 1]. The
    annotator blurs the square; the square and the blur are separable, so the blurred row's outer
    product is the same mask (1e-6) at a 750th of the cost (3000², a 751-tap kernel)."""
    sigma = int(size / 16)
    k_size = int(2 * np.ceil(2 * int(size / 16)) + 1)
    margin = int(0.15 * size)
    row = np.zeros((1, size), np.float32)
    row[0, margin : size - margin] = 1
    row = cv2.GaussianBlur(row, (k_size, 1), sigma)[0]
    mask = np.outer(row, row)
    mask = ((mask - mask.min()) / (mask.max() - mask.min())).astype(np.float32)
    mask.flags.writeable = False  # cached: shared by every call
    return mask


def gradient(image: np.ndarray) -> np.ndarray:
    """|∂y| + |∂x| of the grey image (Sobel 3×3), float64."""
    gray = np.dot(image[..., :3], [0.2989, 0.5870, 0.1140])
    return np.abs(cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3)) + np.abs(cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3))


def processing_resolution(image: np.ndarray, basesize: int = RECEPTIVE_FIELD) -> tuple[int, float]:
    """R_x (section 5 of the paper) and the patch scale K (section 6)."""
    image_dim = int(min(image.shape[:2]))
    grad = cv2.resize(gradient(image), (image_dim, image_dim))
    low, high = grad.min(), grad.max()
    grad = np.where(grad >= low + 0.4 * (high - low), 1.0, 0.0)
    kernel = np.ones((basesize // SPEED_SCALE,) * 2, float)
    kernel2 = np.ones((int(basesize / (4 * SPEED_SCALE)),) * 2, float)
    threshold = min(WHOLE_SIZE_THRESHOLD, SCALE_THRESHOLD * max(image.shape[:2]))
    outputsize_scale = basesize / SPEED_SCALE
    resized = None
    for p_size in range(basesize // SPEED_SCALE, int(threshold / SPEED_SCALE), basesize // (2 * SPEED_SCALE)):
        pooled = block_reduce(grad, (image_dim // p_size,) * 2, np.max)
        resized = np.where(cv2.resize(pooled, (p_size, p_size)) >= 0.5, 1.0, 0.0)
        if (1 - cv2.dilate(resized, kernel, iterations=1)).mean() > CONFIDENCE:
            break
        outputsize_scale = p_size
    if resized is None:  # an image under 160 px: no resolution to search (the annotator fails here)
        return basesize, 0.0
    return int(outputsize_scale * SPEED_SCALE), float(cv2.dilate(resized, kernel2, iterations=1).mean())


def double_estimate(image: np.ndarray, low: int, high: int, estimate: Estimate, merge: Merge) -> np.ndarray:
    """The estimates at `low` and `high`, merged; min-max scaled to [0, 1], 1024²."""
    size = (MERGE_SIZE, MERGE_SIZE)
    first = cv2.resize(estimate(image, low), size, interpolation=cv2.INTER_CUBIC)
    second = cv2.resize(estimate(image, high), size, interpolation=cv2.INTER_CUBIC)
    return min_max(merge(first, second))


def min_max(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def grid_patches(blsize: int, stride: int, height: int, width: int) -> list[list[int]]:
    """The initial grid of 2·blsize squares, [x, y, w, h]."""
    return [
        [k - blsize, j - blsize, 2 * blsize, 2 * blsize]
        for k in range(blsize, width - blsize, stride)
        for j in range(blsize, height - blsize, stride)
    ]


def _density(integral: np.ndarray, rect: list[int]) -> float:
    x, y, w, h = rect
    return float(integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x]) / (w * h)


def select_patches(image: np.ndarray, base_size: int, factor: float) -> list[list[int]]:
    """The patches worth refining (gradient density at least the image's), each grown by
    32/factor px steps while it stays inside and dense enough; largest first."""
    grad = gradient(image)
    positive = grad[grad > 0]
    if positive.size:
        grad[grad < positive.mean()] = 0
    whole = grad.sum() / grad.size
    integral = cv2.integral(grad)
    height, width = integral.shape
    blsize = round(base_size / 2)
    step = int(32 / factor)
    selected = []
    for rect in grid_patches(blsize, round(blsize * 0.75), image.shape[0], image.shape[1]):
        if _density(integral, rect) < whole:
            continue
        while True:
            grown = [rect[0] - step // 2, rect[1] - step // 2, rect[2] + step, rect[3] + step]
            if grown[0] < 0 or grown[1] < 0 or grown[1] + grown[3] >= height or grown[0] + grown[2] >= width:
                break
            if _density(integral, grown) < whole:
                break
            rect = grown
        selected.append(rect)
    return sorted(selected, key=lambda rect: rect[2], reverse=True)  # stable: grid order among equals


def boost(image: np.ndarray, estimate: Estimate, merge: Merge, max_res: int) -> np.ndarray:
    """Relative depth (float, image's HxW; larger = farther) of an RGB uint8 image."""
    height, width = image.shape[:2]
    optimal, patch_scale = processing_resolution(image)
    whole = double_estimate(image, RECEPTIVE_FIELD, optimal, estimate, merge)
    if max_res < optimal:  # no local boosting
        return cv2.resize(whole, (width, height), interpolation=cv2.INTER_CUBIC)
    factor = max(min(1.0, 4 * patch_scale * optimal / WHOLE_SIZE_THRESHOLD), 0.2)
    if height > width:
        a, b = 2 * optimal, round(2 * optimal * width / height)
    else:
        a, b = round(2 * optimal * height / width), 2 * optimal
    a, b = round(a / factor), round(b / factor)
    upscaled = cv2.resize(image, (b, a), interpolation=cv2.INTER_CUBIC)
    patches = select_patches(upscaled, 2 * RECEPTIVE_FIELD, factor)
    scale = height / upscaled.shape[0]  # patches are merged in at the input's resolution
    size = (round(upscaled.shape[1] * scale), round(upscaled.shape[0] * scale))
    rgb = cv2.resize(upscaled, size, interpolation=cv2.INTER_CUBIC)
    base = cv2.resize(whole, size, interpolation=cv2.INTER_CUBIC)
    updated = base.copy()
    mask_org = gaussian_mask(3000)
    mask = mask_org
    for rect in patches:
        x, y, w, h = np.round(np.array(rect) * scale).astype(int)
        patch_base = base[y : y + h, x : x + w]
        org_size = patch_base.shape
        detail = double_estimate(rgb[y : y + h, x : x + w], RECEPTIVE_FIELD, 2 * RECEPTIVE_FIELD, estimate, merge)
        base_1024 = cv2.resize(patch_base, (MERGE_SIZE, MERGE_SIZE), interpolation=cv2.INTER_CUBIC)
        mapped = merge(base_1024, detail)  # not rescaled: the linear fit maps it onto the base
        fit = np.polyfit(mapped.reshape(-1), base_1024.reshape(-1), deg=1)
        merged = cv2.resize(np.polyval(fit, mapped), (org_size[1], org_size[0]), interpolation=cv2.INTER_CUBIC)
        if mask.shape != org_size:
            mask = cv2.resize(mask_org, (org_size[1], org_size[0]), interpolation=cv2.INTER_LINEAR)
        region = updated[y : y + h, x : x + w]
        updated[y : y + h, x : x + w] = region * (1 - mask) + merged * mask
    return cv2.resize(updated, (width, height), interpolation=cv2.INTER_CUBIC)

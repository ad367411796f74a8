"""Edge, line-art and scribble maps: canny and the classical stand-ins for learned detectors.

Polarity follows what ControlNet 1.1 models were trained on: white lines on black.
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.registry import Param, detector

LINEART_MODELS = ("control_v11p_sd15_lineart", "control_v11p_sd15s2_lineart_anime")
SOFTEDGE_MODELS = ("control_v11p_sd15_softedge",)
SCRIBBLE_MODELS = ("control_v11p_sd15_scribble",)


@detector(
    "canny", "Canny edges: thin white edges on black.",
    params=(Param("low_threshold", 100, "hysteresis low threshold", 1, 255),
            Param("high_threshold", 200, "hysteresis high threshold", 1, 255)),
    feeds=("control_v11p_sd15_canny", "diffusers/controlnet-canny-sdxl-1.0"),
    pad64=False,
)
def canny(image: np.ndarray, low_threshold: int = 100, high_threshold: int = 200) -> np.ndarray:
    return cv2.Canny(image, low_threshold, high_threshold)


@detector(
    "invert", "Invert (from white background & black line): a drawing on paper → white lines "
    "on black, ready for line-art, scribble, canny or M-LSD models.",
    feeds=(*LINEART_MODELS, *SCRIBBLE_MODELS, "control_v11p_sd15_canny", "control_v11p_sd15_mlsd"),
    pad64=False,
)
def invert(image: np.ndarray) -> np.ndarray:
    return 255 - image


@detector(
    "scribble", "ControlNet 1.0's scribble: dark strokes on light paper (any channel below 127) → "
    "white strokes on black.",
    feeds=(*SCRIBBLE_MODELS,), pad64=False,
)
def scribble(image: np.ndarray) -> np.ndarray:
    return np.where(image.min(axis=2) < 127, 255, 0).astype(np.uint8)


@detector(
    "threshold", "Binarize: pixels brighter than the threshold become white, others black.",
    params=(Param("threshold", 127, "brightness threshold", 0, 255),),
    feeds=(*SCRIBBLE_MODELS,), pad64=False,
)
def threshold(image: np.ndarray, threshold: int = 127) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.where(grey > threshold, 255, 0).astype(np.uint8)


@detector(
    "lineart_standard", "Line art (classical, offline): difference of a blurred copy — dark "
    "strokes of the photo or drawing become white lines on black.",
    params=(Param("sigma", 6.0, "blur radius of the background estimate", 0.5, 32.0),),
    feeds=LINEART_MODELS, approximates="lineart_realistic / lineart_coarse / lineart_anime",
)
def lineart_standard(image: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    x = image.astype(np.float32)
    blurred = cv2.GaussianBlur(x, (0, 0), sigma)
    intensity = np.min(blurred - x, axis=2).clip(0, 255)
    strong = intensity[intensity > 8]
    intensity /= max(16.0, float(np.median(strong)) if strong.size else 16.0)
    intensity *= 127
    return intensity.clip(0, 255).astype(np.uint8)


@detector(
    "scribble_xdog", "Scribble (classical, offline): extended difference of Gaussians, "
    "thresholded and thickened into the bold strokes the scribble model was trained on.",
    params=(Param("threshold", 32, "XDoG threshold: lower keeps more strokes", 1, 64),
            Param("thickness", 3, "stroke width in pixels at 512 px", 1, 12)),
    feeds=SCRIBBLE_MODELS, approximates="scribble_hed / scribble_pidinet",
)
def scribble_xdog(image: np.ndarray, threshold: int = 32, thickness: int = 3) -> np.ndarray:
    x = image.astype(np.float32)
    dog = np.min(cv2.GaussianBlur(x, (0, 0), 5.0) - cv2.GaussianBlur(x, (0, 0), 0.5), axis=2)
    strokes = np.where(2 * dog.clip(0, 255) > threshold, 255, 0).astype(np.uint8)
    return _thicken(strokes, thickness, min(image.shape[:2]))


@detector(
    "scribble_sketch", "Scribble from a user's sketch on white paper: dark strokes → bold "
    "white strokes on black (invert, binarize, thicken).",
    params=(Param("threshold", 127, "strokes are pixels darker than this", 1, 254),
            Param("thickness", 5, "stroke width in pixels at 512 px", 1, 16)),
    feeds=SCRIBBLE_MODELS, pad64=False,
)
def scribble_sketch(image: np.ndarray, threshold: int = 127, thickness: int = 5) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    strokes = np.where(grey < threshold, 255, 0).astype(np.uint8)
    return _thicken(strokes, thickness, min(image.shape[:2]))


@detector(
    "softedge_dog", "Soft edges (classical, offline): multi-scale gradient magnitude, "
    "normalised and smoothed into HED-like soft grey edges on black.",
    params=(Param("safe", False, "quantise like *_safe modules (fewer hidden-shape artefacts)"),),
    feeds=SOFTEDGE_MODELS, approximates="softedge_hed / softedge_pidinet",
)
def softedge_dog(image: np.ndarray, safe: bool = False) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    edges = np.zeros_like(grey)
    for sigma in (1.0, 2.0, 4.0):
        smooth = cv2.GaussianBlur(grey, (0, 0), sigma)
        gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
        magnitude = np.sqrt(gx * gx + gy * gy) * sigma  # scale-normalised
        edges = np.maximum(edges, magnitude)
    top = float(np.percentile(edges, 99.5)) or 1.0
    soft = np.clip(edges / top, 0, 1)
    soft = cv2.GaussianBlur(soft, (0, 0), 1.0)
    if safe:
        soft = np.round(soft * 4) / 4  # the *_safe quantisation of sd-webui-controlnet
    return (soft * 255).clip(0, 255).astype(np.uint8)


def _thicken(strokes: np.ndarray, thickness: int, short_side: int) -> np.ndarray:
    """Dilate strokes to `thickness` px at 512 px short side, scaled to the working size."""
    width = max(1, round(thickness * short_side / 512))
    if width <= 1:
        return strokes
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    return cv2.dilate(strokes, kernel)

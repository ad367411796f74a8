"""Recolor maps (sd-webui-controlnet's recolor_luminance / recolor_intensity): the picture's
lightness, gamma-corrected, as a grey map for the recolor ControlNets to colour in.

As the extension computes them, at the picture's own size: luminance is L of CIE Lab and
intensity is V of HSV, each scaled to [0, 1], raised to `gamma_correction` and written back as
0–255 grey. The extension hands its RGB picture to OpenCV's BGR→Lab conversion, so red and blue
swap places in the luminance weights (blue counts as much as red would); kekong does the same, so
the map — and what a recolor model makes of it — is the extension's. (The extension also puts
this lightness back into the finished image; that step is generation's, not the map's.)
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect.registry import Param, detector

GAMMA = Param("gamma_correction", 1.0, "gamma applied to the lightness (>1 darker, <1 lighter)", 0.1, 2.0)
FEEDS = ("ioclab/control_v1p_sd15_brightness", "stabilityai/control-lora-recolor")


def _gamma(channel: np.ndarray, gamma: float) -> np.ndarray:
    lightness = channel.astype(np.float32) / 255.0
    return (lightness**gamma * 255.0).clip(0, 255).astype(np.uint8)


@detector("recolor_luminance", "Recolor: the picture's luminance (Lab L, as the extension computes it) with the "
          "gamma applied, as a grey map.", params=(GAMMA,), feeds=FEEDS, pad64=False, uses_resolution=False)
def recolor_luminance(image: np.ndarray, gamma_correction: float = 1.0) -> np.ndarray:
    return _gamma(cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[:, :, 0], gamma_correction)


@detector("recolor_intensity", "Recolor: the picture's intensity (HSV V, the brightest channel) with the gamma "
          "applied, as a grey map.", params=(GAMMA,), feeds=FEEDS, pad64=False, uses_resolution=False)
def recolor_intensity(image: np.ndarray, gamma_correction: float = 1.0) -> np.ndarray:
    return _gamma(cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[:, :, 2], gamma_correction)

"""Preprocessors whose map is the picture itself: sd-webui-controlnet's tile_colorfix,
tile_colorfix+sharp and inpaint_global_harmonious. What sets each apart in the extension happens
while sampling, not in the map: the colour fixes pull the low frequencies of each step's
prediction toward the picture's (blur radius `variation`; `sharpness` sharpens the conditional
half), and global harmonious, unlike inpaint_only, lets the whole picture change with the masked
area (inpaint_only pastes the unmasked area back at every step).
"""

from __future__ import annotations

import numpy as np

from kekong.detect.inpaint import inpaint_only
from kekong.detect.registry import Param, detector

TILE = ("control_v11f1e_sd15_tile",)
VARIATION = Param("variation", 8.0, "colour-fix blur radius in latent pixels (the extension's Variation)", 3.0, 32.0)


@detector("tile_colorfix", "Tile with colour fix: the picture as it is (the colour fix is a sampling step).",
          params=(VARIATION,), feeds=TILE, pad64=False, uses_resolution=False)
def tile_colorfix(image: np.ndarray, variation: float = 8.0) -> np.ndarray:
    return image.copy()


@detector("tile_colorfix+sharp", "Tile with colour fix and sharpening: the picture as it is (both are sampling "
          "steps).", params=(VARIATION, Param("sharpness", 1.0, "detail weight of the sharpening", 0.0, 2.0)),
          feeds=TILE, pad64=False, uses_resolution=False)
def tile_colorfix_sharp(image: np.ndarray, variation: float = 8.0, sharpness: float = 1.0) -> np.ndarray:
    return image.copy()


@detector("inpaint_global_harmonious", "Inpaint, global harmonious: the picture in [0, 1] with masked pixels = "
          "−1.0 (float32), at the picture's size — the map inpaint_only makes, for a unit that repaints the "
          "whole picture in harmony with the masked area. Needs a mask.",
          feeds=("control_v11p_sd15_inpaint",), takes_mask=True, pad64=False, uses_resolution=False)
def inpaint_global_harmonious(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return inpaint_only(image, mask)

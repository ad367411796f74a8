"""Person / background segmentation from mediapipe's selfie segmentation model, coloured with
the ADE20K palette that ControlNet's seg model (control_v11p_sd15_seg) was trained on."""

from __future__ import annotations

import numpy as np

from kekong.detect import mp_models
from kekong.detect.registry import Param, detector

# ADE20K palette entries (class index → RGB) as used by ControlNet's seg annotators.
ADE20K = {
    "wall": (120, 120, 120),
    "building": (180, 120, 120),
    "sky": (6, 230, 230),
    "floor": (80, 50, 50),
    "tree": (4, 200, 3),
    "ceiling": (120, 120, 80),
    "road": (140, 140, 140),
    "grass": (4, 250, 7),
    "person": (150, 5, 61),
}
BACKGROUNDS = ("none", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "grass")


def person_probability(image: np.ndarray, landscape: bool = False) -> np.ndarray:
    """Per-pixel probability (float32 HxW, 0..1) that the pixel belongs to a person."""
    result = mp_models.selfie_segmentation(landscape).process(image)
    return np.asarray(result.segmentation_mask, np.float32)


@detector(
    "seg_person", "Person/background segmentation (mediapipe selfie segmentation) in the ADE20K "
    "palette: people in the 'person' colour, the rest black or a chosen ADE20K class.",
    params=(Param("threshold", 0.5, "person probability threshold", 0.05, 0.95),
            Param("background", "none", "ADE20K class for the background ('none' = black)",
                  choices=BACKGROUNDS),
            Param("landscape", False, "use the landscape model (faster, 144×256)")),
    feeds=("control_v11p_sd15_seg",), pad64=False,
)
def seg_person(image: np.ndarray, threshold: float = 0.5, background: str = "none",
               landscape: bool = False) -> np.ndarray:
    person = person_probability(image, landscape) > threshold
    canvas = np.zeros((*image.shape[:2], 3), np.uint8)
    if background != "none":
        canvas[:] = ADE20K[background]
    canvas[person] = ADE20K["person"]
    return canvas

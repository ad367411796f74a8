"""`inpaint_only+lama`: LaMa fills the masked area, as sd-webui-controlnet's preprocessor does, for a unit that
then works as `inpaint_only` on the filled picture.

The extension's steps: the picture and its mask (255 = repaint) scaled together so the short side is 256
(LaMa's training size; area/cubic as its other preprocessors), edge-padded to multiples of 64; LaMa
(lllyasviel/Annotators `ControlNetLama.pth`) sees the RGB in [0, 1] with the hole (mask > 0.5) zeroed,
and the mask; its prediction fills the hole, is cropped back, resized bilinearly to the picture's size and
blended into the picture by the mask as alpha. That filled picture is this detector's map (the extension's
preview). A generation unit with this module feeds the ControlNet the inpaint map of the filled picture
(masked = −1, as `inpaint_only`) and starts sampling from the extension's noise: q(x₉₉₉ | latents of the
filled picture) with the image's noise (generation/units/base.py, generation/pipeline.py).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from kekong.detect.learned import NETWORKS, WEIGHTS_PARAM, _network
from kekong.detect.learned.lama_net import LamaGenerator
from kekong.detect.registry import detector
from kekong.detect.resolution import resize_short_side

NETWORKS["ControlNetLama.pth"] = LamaGenerator
LAMA_SIDE = 256  # "Always use 256 since lama is trained on 256"


def lama_fill(image: np.ndarray, mask: np.ndarray, weights: str = "") -> np.ndarray:
    """The picture (uint8 RGB) with LaMa's fill blended in where `mask` (uint8, 255 = repaint) is set."""
    net = _network("ControlNetLama.pth", "inpaint_only+lama", weights, "inpaint_only")
    h, w = image.shape[:2]
    grey = mask if mask.ndim == 2 else mask[:, :, :3].mean(axis=2).astype(np.uint8)
    work, remove_pad = resize_short_side(np.dstack([image, grey]), LAMA_SIDE, pad=True)
    hole = (work[:, :, 3:4].astype(np.float32) / 255.0 > 0.5).astype(np.float32)
    color = work[:, :, :3].astype(np.float32) / 255.0 * (1 - hole)
    feed = torch.from_numpy(np.concatenate([color, hole], axis=2)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        predicted = net(feed)[0].permute(1, 2, 0).numpy()
    predicted = ((predicted * hole + color * (1 - hole)) * 255.0).clip(0, 255).astype(np.uint8)
    predicted = cv2.resize(remove_pad(predicted), (w, h))
    alpha = grey[:, :, None].astype(np.float32) / 255.0
    return (predicted.astype(np.float32) * alpha + image.astype(np.float32) * (1 - alpha)).clip(0, 255).astype(np.uint8)


@detector("inpaint_only+lama", "Inpaint with LaMa's fill (learned; ControlNetLama.pth): the picture with the "
          "masked area filled by LaMa at a 256 px short side; a unit with it works as inpaint_only on the "
          "filled picture and starts from the extension's noise of it. Needs a mask.",
          params=(WEIGHTS_PARAM,), feeds=("control_v11p_sd15_inpaint",), needs_weights="ControlNetLama.pth",
          takes_mask=True, pad64=False, uses_resolution=False, extra={"fills_inpaint": True})
def inpaint_only_lama(image: np.ndarray, mask: np.ndarray, weights: str = "") -> np.ndarray:
    return lama_fill(image, mask, weights)


def outpaint_canvas(image: np.ndarray, mask: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The extension's outpaint fix for an inpaint_only+lama unit in Resize and Fill: the picture fitted inside
    the generation size first, the bands around it in the border colour and masked (255), so LaMa fills them."""
    from kekong.detect.resolution import ResizeMode, fit_geometry, fit_to_target

    mode = ResizeMode.RESIZE_AND_FILL
    canvas = fit_to_target(image, size_hw, mode)
    (nh, nw), (top, left) = fit_geometry(image.shape[:2], size_hw, mode)
    grey = mask if mask.ndim == 2 else mask[:, :, :3].mean(axis=2).astype(np.uint8)
    inside = fit_to_target(grey, size_hw, mode)[top:top + nh, left:left + nw]
    band = np.full(size_hw, 255, np.uint8)
    band[top:top + nh, left:left + nw] = np.where(inside > 127, 255, 0)
    return canvas, band

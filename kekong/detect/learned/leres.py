"""`depth_leres` and `depth_leres++`: LeReS depth (`res101.pth`) and its BoostingMonocularDepth
merge (`latest_net_G.pth`), with the annotator's pre- and post-processing:

- input: the processor image in BGR order, as float 0–255 minus the ImageNet mean over its std
  (the annotator's `ToTensor` gets a float array, so it never divides by 255 — the maps ControlNet
  was trained on were made so);
- output: the depth min-max scaled to 16 bits, then to 8 (`convertScaleAbs`), `Remove Near %`
  zeroes the nearest pixels (a threshold before inversion: they turn white), the map is inverted
  (near = white), and `Remove Background %` zeroes the farthest (black).

Both files come from lllyasviel/Annotators; `res101.pth` holds the network under `depth_model`
with `module.` prefixes, stripped as the annotator does.
"""

from __future__ import annotations

import os
from functools import lru_cache

import cv2
import numpy as np
import torch

from kekong.detect.depth import DEPTH_MODELS, NO_OFFLINE_DEPTH
from kekong.detect.learned import WEIGHTS_PARAM
from kekong.detect.learned.leres_boost import boost
from kekong.detect.learned.leres_net import FULL, LeresConfig, RelDepthModel
from kekong.detect.learned.pix2pix import UnetGenerator
from kekong.detect.learned.strict import load_strictly, strip_prefix
from kekong.detect.registry import Param, detector
from kekong.models.weights import find_annotator, load_state_dict

LERES_FILE, MERGE_FILE = "res101.pth", "latest_net_G.pth"
STAND_IN = NO_OFFLINE_DEPTH
CONFIG: LeresConfig = FULL  # the tests build tiny networks of the same layout
MERGE_NGF = 64
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
FEEDS = DEPTH_MODELS
NEAR = Param("remove_near", 0.0, "Remove Near %: the nearest share of the depth range turns white", 0.0, 100.0)
BACKGROUND = Param("remove_background", 0.0, "Remove Background %: the farthest share turns black", 0.0, 100.0)
MERGE_PARAM = Param("merge_weights", "", "path of latest_net_G.pth, the boost's merge network (default: looked up)")


def _stamp(path: str) -> int:
    return os.stat(path).st_mtime_ns


@lru_cache(maxsize=2)
def _leres(path: str, stamp: int, config: LeresConfig) -> RelDepthModel:
    state = load_state_dict(path)
    if isinstance(state.get("depth_model"), dict):  # the training checkpoint: depth_model (+ optimizer, …)
        state = state["depth_model"]
    network = RelDepthModel(config)
    load_strictly(network, strip_prefix(state, "module."), path, "LeReS (ResNeXt-101)")
    return network.eval()


@lru_cache(maxsize=2)
def _merge_net(path: str, stamp: int, ngf: int) -> UnetGenerator:
    state = strip_prefix(load_state_dict(path), "module.")
    network = UnetGenerator(ngf=ngf)
    load_strictly(network, state, path, "pix2pix merge (unet_1024)")
    return network.eval()


def leres_network(weights: str, detector: str) -> RelDepthModel:
    path = str(find_annotator(LERES_FILE, detector, explicit=weights or None, stand_in=STAND_IN))
    return _leres(path, _stamp(path), CONFIG)


def merge_network(weights: str, detector: str) -> UnetGenerator:
    path = str(find_annotator(MERGE_FILE, detector, explicit=weights or None, stand_in=STAND_IN,
                              param=MERGE_PARAM.name))
    return _merge_net(path, _stamp(path), MERGE_NGF)


def leres_input(image: np.ndarray, width: int, height: int) -> torch.Tensor:
    """The annotator's `estimateleres` input: BGR, resized, (x − mean) / std on 0–255 values."""
    bgr = cv2.resize(np.ascontiguousarray(image[:, :, ::-1]), (width, height))
    return torch.from_numpy((bgr.astype(np.float32) - MEAN) / STD).permute(2, 0, 1)[None]


def estimate(network: RelDepthModel, image: np.ndarray, width: int, height: int) -> np.ndarray:
    """LeReS depth at width×height, resized (bicubic) back to the image's size."""
    with torch.inference_mode():
        depth = network(leres_input(image, width, height))[0, 0].numpy()
    return cv2.resize(depth, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)


def merge(network: UnetGenerator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The merge network on two estimates, each min-max scaled to [−1, 1]; answers in [0, 1]."""

    def scaled(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, None]
        span = t.max() - t.min()
        return ((t - t.min()) / span if span > 0 else torch.zeros_like(t)) * 2 - 1

    with torch.inference_mode():
        fake = network(torch.cat([scaled(low), scaled(high)], 1))
    return ((fake + 1) / 2)[0, 0].numpy()


def encode(depth: np.ndarray, remove_near: float, remove_background: float) -> np.ndarray:
    """Depth (larger = farther) → the annotator's uint8 map (near = white), with its two thresholds."""
    low, high = float(depth.min()), float(depth.max())
    if high - low > np.finfo("float").eps:
        out = 65535.0 * (depth - low) / (high - low)
    else:
        out = np.zeros(depth.shape)
    image = cv2.convertScaleAbs(out.astype(np.uint16), alpha=255.0 / 65535.0)
    if remove_near != 0:
        image = cv2.threshold(image, remove_near / 100 * 255, 255, cv2.THRESH_TOZERO)[1]
    image = cv2.bitwise_not(image)
    if remove_background != 0:
        image = cv2.threshold(image, remove_background / 100 * 255, 255, cv2.THRESH_TOZERO)[1]
    return image


@detector(
    "depth_leres",
    "LeReS relative depth (learned; res101.pth), near = white; Remove Near % / "
    "Remove Background % as the extension's sliders.",
    params=(NEAR, BACKGROUND, WEIGHTS_PARAM),
    feeds=FEEDS,
    needs_weights=LERES_FILE,
)
def depth_leres(
    image: np.ndarray, remove_near: float = 0.0, remove_background: float = 0.0, weights: str = ""
) -> np.ndarray:
    network = leres_network(weights, "depth_leres")
    height, width = image.shape[:2]
    return encode(estimate(network, image, width, height), remove_near, remove_background)


@detector(
    "depth_leres++",
    "LeReS depth boosted by BoostingMonocularDepth's merge network (learned; "
    "res101.pth + latest_net_G.pth): double estimate at 448 px and R_x, and local patch refinement "
    "when the image is at least R_x; near = white.",
    params=(NEAR, BACKGROUND, WEIGHTS_PARAM, MERGE_PARAM),
    feeds=FEEDS,
    needs_weights=f"{LERES_FILE} + {MERGE_FILE}",
)
def depth_leres_boost(
    image: np.ndarray,
    remove_near: float = 0.0,
    remove_background: float = 0.0,
    weights: str = "",
    merge_weights: str = "",
) -> np.ndarray:
    network = leres_network(weights, "depth_leres++")
    merger = merge_network(merge_weights, "depth_leres++")
    depth = boost(
        image,
        lambda img, size: estimate(network, img, size, size),
        lambda low, high: merge(merger, low, high),
        max(image.shape[:2]),
    )
    return encode(depth, remove_near, remove_background)

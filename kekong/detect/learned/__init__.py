"""Learned detectors whose outputs ControlNet 1.1 models were trained on (weights required).

Each loads its released checkpoint (lllyasviel/Annotators) through `models.weights`: from
`weights=PATH`, the kekong models folder, or the HF cache — never downloaded. Without the
file, a MissingWeightsError names it, where to get it and the offline stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np
import torch

from kekong.detect.learned.mlsd import MLSDLarge, segments
from kekong.detect.learned.networks import AnimeLineartUnet, ControlNetHED, LineartGenerator
from kekong.detect.learned.normalbae import NormalBae
from kekong.detect.learned.pidinet import PiDiNet
from kekong.detect.registry import Param, detector
from kekong.errors import KekongError
from kekong.models.weights import find_annotator, load_state_dict

WEIGHTS_PARAM = Param("weights", "", "path of the weights file (default: looked up)")
NETWORKS: dict[str, Callable[[], torch.nn.Module]] = {
    "ControlNetHED.pth": ControlNetHED,
    "sk_model.pth": LineartGenerator,
    "sk_model2.pth": LineartGenerator,
    "netG.pth": AnimeLineartUnet,
    "table5_pidinet.pth": PiDiNet,
    "mlsd_large_512_fp32.pth": MLSDLarge,
    "scannet.pt": NormalBae,
}


@lru_cache(maxsize=4)
def load_network(path: str, filename: str) -> torch.nn.Module:
    """Build the network for `filename` and load `path` into it strictly."""
    network = NETWORKS[filename]()
    state = load_state_dict(path)
    for wrapper in ("state_dict", "model"):  # training checkpoints (PiDiNet's, NormalBAE's) wrap the weights
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    state = {key.removeprefix("module."): value for key, value in state.items()}
    misfit = _misfit(network.state_dict(), state)
    if misfit:
        raise KekongError(f"{path}: does not fit the {filename} network ({misfit})")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise KekongError(f"{path}: does not fit the {filename} network "
                          f"({str(exc).splitlines()[0]})") from exc
    return network.eval()


def _misfit(expected: dict, state: dict) -> str:
    """The keys a checkpoint lacks, has extra or has in another shape (three of each), or ''."""
    shape = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    kinds = (("missing", [k for k in expected if k not in state]),
             ("unexpected", [k for k in state if k not in expected]),
             ("another shape", [f"{k} {shape[k]} instead of {tuple(v.shape)}" for k, v in expected.items()
                                if k in shape and shape[k] != tuple(v.shape)]))
    return "; ".join(f"{kind}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}" for kind, keys in kinds
                     if keys)


def _network(filename: str, detector: str, weights: str, stand_in: str) -> torch.nn.Module:
    path = find_annotator(filename, detector, explicit=weights or None, stand_in=stand_in)
    return load_network(str(path), filename)


def _to_tensor(image: np.ndarray, scale: float, shift: float = 0.0) -> torch.Tensor:
    return torch.from_numpy(image.astype(np.float32) * scale + shift).permute(2, 0, 1)[None]


def hed_edges(image: np.ndarray, weights: str, detector: str, safe: bool) -> np.ndarray:
    """HED soft edges (uint8 HxW): mean of the five side outputs through a sigmoid."""
    net = _network("ControlNetHED.pth", detector, weights, "softedge_dog")
    h, w = image.shape[:2]
    with torch.inference_mode():
        sides = net(_to_tensor(image, 1.0))
    maps = [cv2.resize(side[0, 0].numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
            for side in sides]
    edge = 1.0 / (1.0 + np.exp(-np.mean(maps, axis=0).astype(np.float64)))
    if safe:
        edge = safe_step(edge)
    return (edge * 255.0).clip(0, 255).astype(np.uint8)


def safe_step(x: np.ndarray, step: int = 2) -> np.ndarray:
    """Quantise soft edges (the *_safe modules): hides less of the picture in faint grey."""
    return (x.astype(np.float32) * (step + 1)).astype(np.int32).astype(np.float32) / step


def nms(edges: np.ndarray, threshold: int, sigma: float) -> np.ndarray:
    """Thin soft edges to their ridges in four directions, then binarise."""
    x = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), sigma)
    kernels = [np.array(k, np.uint8) for k in (
        [[0, 0, 0], [1, 1, 1], [0, 0, 0]], [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 0, 1], [0, 1, 0], [1, 0, 0]])]
    ridges = np.zeros_like(x)
    for kernel in kernels:
        np.putmask(ridges, cv2.dilate(x, kernel=kernel) == x, x)
    return np.where(ridges > threshold, 255, 0).astype(np.uint8)


SOFTEDGE = ("control_v11p_sd15_softedge",)
LINEART = ("control_v11p_sd15_lineart",)


@detector("softedge_hed", "HED soft edges (learned; ControlNetHED.pth).", params=(WEIGHTS_PARAM,),
          feeds=SOFTEDGE, needs_weights="ControlNetHED.pth")
def softedge_hed(image: np.ndarray, weights: str = "") -> np.ndarray:
    return hed_edges(image, weights, "softedge_hed", safe=False)


@detector("softedge_hedsafe", "HED soft edges, quantised (learned; ControlNetHED.pth).",
          params=(WEIGHTS_PARAM,), feeds=SOFTEDGE, needs_weights="ControlNetHED.pth")
def softedge_hedsafe(image: np.ndarray, weights: str = "") -> np.ndarray:
    return hed_edges(image, weights, "softedge_hedsafe", safe=True)


@detector("scribble_hed", "Scribble from HED edges: thinned, blurred and binarised into bold "
          "strokes (learned; ControlNetHED.pth).", params=(WEIGHTS_PARAM,),
          feeds=("control_v11p_sd15_scribble",), needs_weights="ControlNetHED.pth")
def scribble_hed(image: np.ndarray, weights: str = "") -> np.ndarray:
    return bold_strokes(hed_edges(image, weights, "scribble_hed", safe=False))


def bold_strokes(edges: np.ndarray) -> np.ndarray:
    """Soft edges → scribble: thinned to ridges, blurred and binarised into bold strokes."""
    strokes = cv2.GaussianBlur(nms(edges, 127, 3.0), (0, 0), 3.0)
    return np.where(strokes > 4, 255, 0).astype(np.uint8)


def pidinet_edges(image: np.ndarray, weights: str, detector: str, safe: bool) -> np.ndarray:
    """PiDiNet soft edges (uint8 HxW) as ControlNet's annotator makes them: BGR in [0, 1], the
    fused output."""
    net = _network("table5_pidinet.pth", detector, weights, "softedge_dog")
    with torch.inference_mode():
        edge = net(_to_tensor(np.ascontiguousarray(image[:, :, ::-1]), 1 / 255))[-1][0, 0].numpy()
    if safe:
        edge = safe_step(edge)
    return (edge * 255.0).clip(0, 255).astype(np.uint8)


@detector("softedge_pidinet", "PiDiNet soft edges (learned; table5_pidinet.pth).", params=(WEIGHTS_PARAM,),
          feeds=SOFTEDGE, needs_weights="table5_pidinet.pth")
def softedge_pidinet(image: np.ndarray, weights: str = "") -> np.ndarray:
    return pidinet_edges(image, weights, "softedge_pidinet", safe=False)


@detector("softedge_pidisafe", "PiDiNet soft edges, quantised (learned; table5_pidinet.pth).",
          params=(WEIGHTS_PARAM,), feeds=SOFTEDGE, needs_weights="table5_pidinet.pth")
def softedge_pidisafe(image: np.ndarray, weights: str = "") -> np.ndarray:
    return pidinet_edges(image, weights, "softedge_pidisafe", safe=True)


@detector("scribble_pidinet", "Scribble from PiDiNet edges: thinned, blurred and binarised into bold strokes "
          "(learned; table5_pidinet.pth).", params=(WEIGHTS_PARAM,), feeds=("control_v11p_sd15_scribble",),
          needs_weights="table5_pidinet.pth")
def scribble_pidinet(image: np.ndarray, weights: str = "") -> np.ndarray:
    return bold_strokes(pidinet_edges(image, weights, "scribble_pidinet", safe=False))


@detector("mlsd", "M-LSD straight line segments (learned; mlsd_large_512_fp32.pth), 1 px white on black.",
          params=(Param("value_threshold", 0.1, "centre score a segment needs", 0.01, 2.0),
                  Param("distance_threshold", 0.1, "shortest segment kept, in half-resolution pixels", 0.01, 20.0),
                  WEIGHTS_PARAM),
          feeds=("control_v11p_sd15_mlsd",), needs_weights="mlsd_large_512_fp32.pth", pad64=False)
def mlsd(image: np.ndarray, value_threshold: float = 0.1, distance_threshold: float = 0.1,
         weights: str = "") -> np.ndarray:
    net = _network("mlsd_large_512_fp32.pth", "mlsd", weights, "mlsd_lsd")
    canvas = np.zeros(image.shape[:2], np.uint8)
    for x0, y0, x1, y1 in segments(net, image, value_threshold, distance_threshold):
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), 255, 1)
    return canvas


def _lineart(image: np.ndarray, filename: str, detector: str, weights: str) -> np.ndarray:
    net = _network(filename, detector, weights, "lineart_standard")
    with torch.inference_mode():
        paper = net(_to_tensor(image, 1 / 255.0))[0, 0].numpy()
    return 255 - (paper * 255.0).clip(0, 255).astype(np.uint8)  # white lines on black


@detector("lineart_realistic", "Line art from photos (learned; sk_model.pth), white on black.",
          params=(WEIGHTS_PARAM,), feeds=LINEART, needs_weights="sk_model.pth")
def lineart_realistic(image: np.ndarray, weights: str = "") -> np.ndarray:
    return _lineart(image, "sk_model.pth", "lineart_realistic", weights)


@detector("lineart_coarse", "Coarse line art (learned; sk_model2.pth), white on black.",
          params=(WEIGHTS_PARAM,), feeds=LINEART, needs_weights="sk_model2.pth")
def lineart_coarse(image: np.ndarray, weights: str = "") -> np.ndarray:
    return _lineart(image, "sk_model2.pth", "lineart_coarse", weights)


@detector("lineart_anime", "Anime line art (learned; netG.pth), white on black.",
          params=(WEIGHTS_PARAM,), feeds=("control_v11p_sd15s2_lineart_anime",),
          needs_weights="netG.pth")
def lineart_anime(image: np.ndarray, weights: str = "") -> np.ndarray:
    net = _network("netG.pth", "lineart_anime", weights, "lineart_standard")
    h, w = image.shape[:2]
    hn, wn = 256 * int(np.ceil(h / 256)), 256 * int(np.ceil(w / 256))  # the U-Net needs 256s
    feed = cv2.resize(image, (wn, hn), interpolation=cv2.INTER_CUBIC)
    with torch.inference_mode():
        line = net(_to_tensor(feed, 1 / 127.5, -1.0))[0, 0].numpy() * 127.5 + 127.5
    line = cv2.resize(line, (w, h), interpolation=cv2.INTER_CUBIC)
    return 255 - line.clip(0, 255).astype(np.uint8)


IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@detector("normal_bae", "Surface normals from NormalBAE (learned; scannet.pt), in its colours: blue = facing "
          "the viewer, red = facing left, green = facing up.", params=(WEIGHTS_PARAM,),
          feeds=("control_v11p_sd15_normalbae",), needs_weights="scannet.pt")
def normal_bae(image: np.ndarray, weights: str = "") -> np.ndarray:
    net = _network("scannet.pt", "normal_bae", weights, "normal_from_depth (input_is_depth=true)")
    feed = ((image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
    with torch.inference_mode():
        estimate = net(torch.from_numpy(feed).permute(2, 0, 1)[None])
    normal = estimate[0, :3].permute(1, 2, 0).numpy()
    if normal.shape[:2] != image.shape[:2]:  # sides not multiples of 32
        normal = cv2.resize(normal, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return ((normal + 1.0) * 0.5 * 255.0).clip(0, 255).astype(np.uint8)

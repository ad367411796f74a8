"""`depth_zoe`: ZoeDepth (Bhat et al., 2023) as the extension's annotator runs `ZoeD_M12_N.pt`: the
single-head ZoeD-N (config_zoedepth.json: 64 softplus bin centres, attractors 16/8/4/1 of the
inverse kind, mean-aggregated, γ 2 and α 300 — the config's 1000 is stored on the layer but never passed to
`inv_attractor`, whose default acts —, log-binomial output at temperatures 0.0212–50) on MiDaS's
DPT_BEiT_L_384 (zoe_beit.py).

Processing, as the annotator: RGB / 255; each pass pads the image by reflection (⌊√(side/2)·3⌋ per side),
resizes it (bilinear, align_corners) to the 384×512 grid's nearer scale in multiples of 32 (aspect kept),
normalises to [−1, 1], and the metric depth comes back bicubic to the padded size, cropped; the
pass on the mirrored image is mirrored back and averaged. The map: the 2nd and 85th percentiles map to
1 and 0 (near = white), clipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kekong.detect.depth import DEPTH_MODELS, NO_OFFLINE_DEPTH
from kekong.detect.learned import WEIGHTS_PARAM
from kekong.detect.learned.strict import load_strictly, unwrap
from kekong.detect.learned.zoe_beit import BEIT_L_384, BeitConfig, DPTBeit
from kekong.detect.registry import detector
from kekong.models.weights import find_annotator, load_state_dict

ZOE_FILE = "ZoeD_M12_N.pt"
NET_H, NET_W = 384, 512  # img_size of the infer config


@dataclass(frozen=True)
class ZoeConfig:
    beit: BeitConfig = BEIT_L_384
    n_bins: int = 64
    bin_embedding_dim: int = 128
    n_attractors: tuple[int, ...] = (16, 8, 4, 1)
    seed_mlp: int = 256  # SeedBinRegressorUnnormed's hidden width
    mlp: int = 128  # the projectors' and attractors' hidden width
    alpha: float = 300.0  # the config says 1000, but the layer never passes it: inv_attractor's default acts
    gamma: int = 2
    min_temp: float = 0.0212
    max_temp: float = 50.0


ZOED_N = ZoeConfig()
CONFIG: ZoeConfig = ZOED_N  # the tests build tiny networks of the same layout


def _mlp(in_features: int, hidden: int, out_features: int, last: nn.Module | None) -> nn.Sequential:
    layers = [nn.Conv2d(in_features, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, out_features, 1)]
    return nn.Sequential(*layers, *([last] if last is not None else []))


class SeedBinRegressor(nn.Module):
    """SeedBinRegressorUnnormed: the bottleneck's bin centres (softplus)."""

    def __init__(self, features: int, n_bins: int, hidden: int) -> None:
        super().__init__()
        self._net = _mlp(features, hidden, n_bins, nn.Softplus())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x)


class Projector(nn.Module):
    def __init__(self, features: int, out_features: int, hidden: int) -> None:
        super().__init__()
        self._net = _mlp(features, hidden, out_features, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x)


class Attractor(nn.Module):
    """AttractorLayerUnnormed, inverse attractors averaged: each centre c moves by mean over the
    attractors a of (a − c) / (1 + α (a − c)^γ)."""

    def __init__(self, features: int, n_attractors: int, hidden: int, alpha: float, gamma: int) -> None:
        super().__init__()
        self._net = _mlp(features, hidden, n_attractors, nn.Softplus())
        self.alpha, self.gamma = alpha, gamma

    def forward(self, x: torch.Tensor, b_prev: torch.Tensor, prev_embedding: torch.Tensor) -> torch.Tensor:
        x = x + F.interpolate(prev_embedding, x.shape[-2:], mode="bilinear", align_corners=True)
        attractors = self._net(x)
        centres = F.interpolate(b_prev, attractors.shape[-2:], mode="bilinear", align_corners=True)
        dx = attractors.unsqueeze(2) - centres.unsqueeze(1)
        return centres + (dx / (1 + self.alpha * dx.pow(self.gamma))).mean(dim=1)


class LogBinomial(nn.Module):
    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.K = n_classes
        self.register_buffer("k_idx", torch.arange(0, n_classes, device="cpu").view(1, -1, 1, 1))  # constants
        self.register_buffer("K_minus_1", torch.tensor([n_classes - 1.0], device="cpu").view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
        x = x.unsqueeze(1)
        one_minus_x = torch.clamp(1 - x, eps, 1)
        x = torch.clamp(x, eps, 1)
        y = (
            _log_binom(self.K_minus_1, self.k_idx)
            + self.k_idx * torch.log(x)
            + (self.K - 1 - self.k_idx) * torch.log(one_minus_x)
        )
        return torch.softmax(y / t, dim=1)


def _log_binom(n: torch.Tensor, k: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    n, k = n + eps, k + eps
    return n * torch.log(n) - k * torch.log(k) - (n - k) * torch.log(n - k + eps)


class ConditionalLogBinomial(nn.Module):
    """Per pixel, a binomial's p and temperature from the features and the bin embedding → bin probabilities."""

    def __init__(self, in_features: int, condition_dim: int, n_classes: int, min_temp: float, max_temp: float) -> None:
        super().__init__()
        self.p_eps, self.min_temp, self.max_temp = 1e-4, min_temp, max_temp
        self.log_binomial_transform = LogBinomial(n_classes)
        bottleneck = (in_features + condition_dim) // 2
        self.mlp = nn.Sequential(
            nn.Conv2d(in_features + condition_dim, bottleneck, 1), nn.GELU(), nn.Conv2d(bottleneck, 4, 1), nn.Softplus()
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        pt = self.mlp(torch.cat((x, cond), dim=1))
        p, t = pt[:, :2] + self.p_eps, pt[:, 2:] + self.p_eps
        p = p[:, 0] / (p[:, 0] + p[:, 1])
        t = (t[:, 0] / (t[:, 0] + t[:, 1])).unsqueeze(1)
        return self.log_binomial_transform(p, (self.max_temp - self.min_temp) * t + self.min_temp)


class Core(nn.Module):
    """MidasCore: holds the DPT as `core` (so the checkpoint's keys read `core.core.…`)."""

    def __init__(self, beit: BeitConfig) -> None:
        super().__init__()
        self.core = DPTBeit(beit)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.core(prepare(x))


def net_size(height: int, width: int) -> tuple[int, int]:
    """MiDaS's Resize(512, 384, keep_aspect_ratio, multiple of 32, 'minimal'): the scale nearer 1.
    A side that would round to 0 (an aspect ratio past ~1:32, where MiDaS's rule fails) keeps 32."""
    scale_h, scale_w = NET_H / height, NET_W / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return max(32, int(np.round(scale * height / 32) * 32)), max(32, int(np.round(scale * width / 32) * 32))


def prepare(x: torch.Tensor) -> torch.Tensor:
    """PrepForMidas: resize (bilinear, align_corners) and normalise [0, 1] → [−1, 1]."""
    x = F.interpolate(x, net_size(x.shape[2], x.shape[3]), mode="bilinear", align_corners=True)
    return (x - 0.5) / 0.5


class ZoeDepth(nn.Module):
    """RGB in [0, 1] (B×3×H×W) → metric depth (B×1×h×w at the network's size; larger = farther)."""

    def __init__(self, config: ZoeConfig = ZOED_N) -> None:
        super().__init__()
        features, embedding = config.beit.features, config.bin_embedding_dim
        self.core = Core(config.beit)
        self.conv2 = nn.Conv2d(features, features, 1)
        self.seed_bin_regressor = SeedBinRegressor(features, config.n_bins, config.seed_mlp)
        self.seed_projector = Projector(features, embedding, config.mlp)
        self.projectors = nn.ModuleList(Projector(features, embedding, config.mlp) for _ in range(4))
        self.attractors = nn.ModuleList(
            Attractor(embedding, n, config.mlp, config.alpha, config.gamma) for n in config.n_attractors
        )
        self.conditional_log_binomial = ConditionalLogBinomial(
            config.beit.head_features + 1, embedding, config.n_bins, config.min_temp, config.max_temp
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rel_depth, (head, bottleneck, *blocks) = self.core(x)
        x = self.conv2(bottleneck)
        centres = self.seed_bin_regressor(x)
        embedding = self.seed_projector(x)
        for projector, attractor, block in zip(self.projectors, self.attractors, blocks, strict=True):
            new_embedding = projector(block)
            centres = attractor(new_embedding, centres, embedding)
            embedding = new_embedding
        size = head.shape[2:]
        rel = F.interpolate(rel_depth.unsqueeze(1), size=size, mode="bilinear", align_corners=True)
        embedding = F.interpolate(embedding, size, mode="bilinear", align_corners=True)
        probabilities = self.conditional_log_binomial(torch.cat([head, rel], dim=1), embedding)
        centres = F.interpolate(centres, probabilities.shape[-2:], mode="bilinear", align_corners=True)
        return torch.sum(probabilities * centres, dim=1, keepdim=True)


def infer_padded(network: ZoeDepth, x: torch.Tensor) -> torch.Tensor:
    """`_infer_with_pad_aug`: reflect-pad by ⌊√(side/2)·3⌋, infer, bicubic back to the padded size, crop."""
    pad_h, pad_w = int(np.sqrt(x.shape[2] / 2) * 3), int(np.sqrt(x.shape[3] / 2) * 3)
    padded = F.pad(x, [pad_w, pad_w, pad_h, pad_h], mode="reflect")
    out = network(padded)
    if out.shape[-2:] != padded.shape[-2:]:
        out = F.interpolate(out, size=padded.shape[2:], mode="bicubic", align_corners=False)
    return out[:, :, pad_h : out.shape[2] - pad_h, pad_w : out.shape[3] - pad_w]


def infer(network: ZoeDepth, x: torch.Tensor) -> torch.Tensor:
    """`infer` with flip augmentation: the mean of the image's and its mirror's (mirrored back) depth."""
    flipped = infer_padded(network, torch.flip(x, dims=[3]))
    return (infer_padded(network, x) + torch.flip(flipped, dims=[3])) / 2


def encode(depth: np.ndarray) -> np.ndarray:
    """Metric depth → uint8, near = white: the 2nd percentile → 255, the 85th → 0, clipped."""
    vmin, vmax = np.percentile(depth, 2), np.percentile(depth, 85)
    depth = 1.0 - (depth - vmin) / ((vmax - vmin) or 1.0)  # a flat map: white, not NaN
    return (depth * 255.0).clip(0, 255).astype(np.uint8)


@lru_cache(maxsize=2)
def _zoe(path: str, stamp: int, config: ZoeConfig) -> ZoeDepth:
    state = unwrap(load_state_dict(path))
    network = ZoeDepth(config)
    load_strictly(network, state, path, "ZoeDepth (ZoeD-N, BEiT-L/384)")
    return network.eval()


@detector(
    "depth_zoe",
    "ZoeDepth metric depth (learned; ZoeD_M12_N.pt, BEiT-L/384), near = white, the "
    "2nd–85th percentiles spread over the map.",
    params=(WEIGHTS_PARAM,),
    feeds=DEPTH_MODELS,
    needs_weights=ZOE_FILE,
)
def depth_zoe(image: np.ndarray, weights: str = "") -> np.ndarray:
    path = str(find_annotator(ZOE_FILE, "depth_zoe", explicit=weights or None, stand_in=NO_OFFLINE_DEPTH))
    network = _zoe(path, os.stat(path).st_mtime_ns, CONFIG)
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        depth = infer(network, x)[0, 0].numpy()
    return encode(depth)

"""TEED soft edges (`softedge_teed`) and Anyline (`softedge_anyline`) as sd-webui-controlnet makes them.

TEED — the Tiny and Efficient Edge Detector (github.com/xavysp/TEED, MIT) — with the module names of
its released checkpoints: bdsqlsz/qinglong_controlnet-lllite `Annotators/7_model.pth` (TEED) and
TheMistoAI/MistoLine `Anyline/MTEED.pth` (MTEED, the same network retrained for Anyline). The
extension feeds it the RGB picture in 0..255 as it is (no mean subtracted), averages its four outputs
(three scales and their fusion) through a sigmoid, and quantises the map with Safe Steps (0: off).

Anyline adds `lineart_standard` on the same picture, as the extension combines the two uint8 maps:
of the line art only the pixels of intensity exactly 1 are kept (its mask is 0 ≤ v ≤ 1), in
4-connected groups of at least 12 pixels (skimage's min_size 36 counted over the three equal channels
of its RGB map), and written as 1 over the MTEED map — everywhere else the map is MTEED's.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from kekong.detect.edges import lineart_standard
from kekong.detect.learned import NETWORKS, WEIGHTS_PARAM, load_network, safe_step
from kekong.detect.registry import Param, detector
from kekong.models.weights import find_annotator

TEED_FILE = ("bdsqlsz/qinglong_controlnet-lllite", "Annotators/7_model.pth")
MTEED_FILE = ("TheMistoAI/MistoLine", "Anyline/MTEED.pth")
SAFE_STEPS = Param("safe_steps", 2, "quantise the soft edges into this many grey steps (0: off; the extension's "
                   "Safe Steps)", 0, 10)


def smish(x: torch.Tensor) -> torch.Tensor:
    """x · tanh(ln(1 + sigmoid(x))) (Wang et al. 2022), TEED's activation."""
    return x * torch.tanh(torch.log1p(torch.sigmoid(x)))


class Smish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return smish(x)


class DoubleConvBlock(nn.Module):
    def __init__(self, in_features: int, mid_features: int, out_features: int | None = None, stride: int = 1,
                 use_act: bool = True) -> None:
        super().__init__()
        self.use_act = use_act
        self.conv1 = nn.Conv2d(in_features, mid_features, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(mid_features, out_features or mid_features, 3, padding=1)
        self.smish = Smish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.smish(self.conv1(x)))
        return self.smish(x) if self.use_act else x


class SingleConvBlock(nn.Module):
    def __init__(self, in_features: int, out_features: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, 1, stride=stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DenseLayer(nn.Sequential):
    def __init__(self, input_features: int, out_features: int) -> None:
        super().__init__()
        self.add_module("conv1", nn.Conv2d(input_features, out_features, 3, stride=1, padding=2, bias=True))
        self.add_module("smish1", Smish())
        self.add_module("conv2", nn.Conv2d(out_features, out_features, 3, stride=1, bias=True))

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        x1, x2 = x
        return 0.5 * (super().forward(smish(x1)) + x2), x2


class DenseBlock(nn.Sequential):
    def __init__(self, num_layers: int, input_features: int, out_features: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(input_features, out_features))
            input_features = out_features


class UpConvBlock(nn.Module):
    """`up_scale` × (1×1 conv, smish, stride-2 transposed conv) down to one channel."""

    def __init__(self, in_features: int, up_scale: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        kernel, pad = 2 ** up_scale, (0, 0, 1, 3, 7)[up_scale]
        for i in range(up_scale):
            out_features = 1 if i == up_scale - 1 else 16
            layers += [nn.Conv2d(in_features, out_features, 1), Smish(),
                       nn.ConvTranspose2d(out_features, out_features, kernel, stride=2, padding=pad)]
            in_features = out_features
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class DoubleFusion(nn.Module):
    """TEED's fusion of the three scales: two depth-wise convs, summed to one channel through smish."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.DWconv1 = nn.Conv2d(in_ch, in_ch * 8, 3, stride=1, padding=1, groups=in_ch)
        self.PSconv1 = nn.PixelShuffle(1)
        self.DWconv2 = nn.Conv2d(24, 24, 3, stride=1, padding=1, groups=24)
        self.AF = Smish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.PSconv1(self.DWconv1(self.AF(x)))
        attn2 = self.PSconv1(self.DWconv2(self.AF(attn)))
        return smish((attn2 + attn).sum(1, keepdim=True))


class TED(nn.Module):
    """TEED (58 K parameters): three blocks, their upsampled side outputs and the fused map, as logits."""

    def __init__(self) -> None:
        super().__init__()
        self.block_1 = DoubleConvBlock(3, 16, 16, stride=2)
        self.block_2 = DoubleConvBlock(16, 32, use_act=False)
        self.dblock_3 = DenseBlock(1, 32, 48)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.side_1 = SingleConvBlock(16, 32, 2)
        self.pre_dense_3 = SingleConvBlock(32, 48, 1)
        self.up_block_1 = UpConvBlock(16, 1)
        self.up_block_2 = UpConvBlock(32, 1)
        self.up_block_3 = UpConvBlock(48, 2)
        self.block_cat = DoubleFusion(3)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # x: (1, 3, H, W), H and W multiples of 4
        block_1 = self.block_1(x)
        block_2 = self.block_2(block_1)
        block_2_down = self.maxpool(block_2)
        block_3, _ = self.dblock_3((block_2_down + self.side_1(block_1), self.pre_dense_3(block_2_down)))
        results = [self.up_block_1(block_1), self.up_block_2(block_2), self.up_block_3(block_3)]
        return [*results, self.block_cat(torch.cat(results, dim=1))]


NETWORKS.update({"7_model.pth": TED, "MTEED.pth": TED})


def teed_edges(image: np.ndarray, file: tuple[str, str], detector: str, weights: str, safe_steps: int,
               stand_in: str) -> np.ndarray:
    """Soft edges (uint8 HxW): the mean of TEED's four outputs through a sigmoid, Safe-Stepped."""
    repo, path_in_repo = file
    path = find_annotator(path_in_repo, detector, explicit=weights or None, repo=repo, stand_in=stand_in)
    net = load_network(str(path), Path(path_in_repo).name)
    h, w = image.shape[:2]
    with torch.inference_mode():
        outputs = net(torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None])
    maps = [cv2.resize(out[0, 0].numpy(), (w, h), interpolation=cv2.INTER_LINEAR) for out in outputs]
    edge = 1.0 / (1.0 + np.exp(-np.mean(maps, axis=0).astype(np.float64)))
    if safe_steps:
        edge = safe_step(edge, safe_steps)
    return (edge * 255.0).clip(0, 255).astype(np.uint8)


SOFTEDGE = ("control_v11p_sd15_softedge",)


@detector("softedge_teed", "TEED soft edges (learned; Annotators/7_model.pth from bdsqlsz/qinglong_controlnet-"
          "lllite), quantised by Safe Steps.", params=(SAFE_STEPS, WEIGHTS_PARAM), feeds=SOFTEDGE,
          needs_weights="7_model.pth")
def softedge_teed(image: np.ndarray, safe_steps: int = 2, weights: str = "") -> np.ndarray:
    return teed_edges(image, TEED_FILE, "softedge_teed", weights, safe_steps, "softedge_dog")


def faint_lines(image: np.ndarray) -> np.ndarray:
    """Anyline's line-art layer: lineart_standard's pixels of intensity 1, in 4-connected groups of ≥ 12."""
    faint = (lineart_standard(image) == 1).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(faint, connectivity=4)
    keep = stats[:, cv2.CC_STAT_AREA] >= 12
    keep[0] = False  # the background label
    return keep[labels]


@detector("softedge_anyline", "Anyline: MTEED soft edges (learned; Anyline/MTEED.pth from TheMistoAI/MistoLine) "
          "combined with lineart_standard as sd-webui-controlnet does; the extension's default resolution is "
          "1280.", params=(SAFE_STEPS, WEIGHTS_PARAM), feeds=SOFTEDGE,
          needs_weights="MTEED.pth")
def softedge_anyline(image: np.ndarray, safe_steps: int = 2, weights: str = "") -> np.ndarray:
    edges = teed_edges(image, MTEED_FILE, "softedge_anyline", weights, safe_steps, "lineart_standard")
    return np.where(faint_lines(image), np.uint8(1), edges)

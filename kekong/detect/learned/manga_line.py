"""Manga line extraction (`lineart_anime_denoise`) as sd-webui-controlnet makes it.

The res-skip U-Net of "Manga line extraction" (ljsabc/MangaLineExtraction_PyTorch, MIT), with the module
names of lllyasviel/Annotators `erika.pth`: pre-activation residual blocks (batch norm ε = 1e-3, leaky
ReLU 0.2, conv) down to 1/16 and back up with nearest-neighbour upsampling and additive skips. The
extension feeds it the picture in grey (OpenCV's RGB→grey) as 0..255 floats, unnormalised; the
network draws dark lines on white paper in the same range, and the map is 255 minus that — white
lines on black.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from kekong.detect.learned import NETWORKS, WEIGHTS_PARAM, _network
from kekong.detect.registry import detector


def _bn_act(in_filters: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(in_filters, eps=1e-3), nn.LeakyReLU(0.2)]


class BnReluConv(nn.Module):
    def __init__(self, in_filters: int, nb_filters: int, size: int = 3, subsample: int = 1) -> None:
        super().__init__()
        self.model = nn.Sequential(*_bn_act(in_filters),
                                   nn.Conv2d(in_filters, nb_filters, size, stride=subsample, padding=size // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UpBnReluConv(nn.Module):
    def __init__(self, in_filters: int, nb_filters: int) -> None:
        super().__init__()
        self.model = nn.Sequential(*_bn_act(in_filters), nn.Conv2d(in_filters, nb_filters, 3, padding=1),
                                   nn.Upsample(scale_factor=2, mode="nearest"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Shortcut(nn.Module):
    """x + y, x projected by a 1×1 conv (strided, or followed by ×2 upsampling) where the shapes differ."""

    def __init__(self, in_filters: int, nb_filters: int, subsample: int = 1, up: bool = False) -> None:
        super().__init__()
        self.model: nn.Sequential | None = None
        if in_filters != nb_filters or (subsample != 1 and not up):
            layers: list[nn.Module] = [nn.Conv2d(in_filters, nb_filters, 1, stride=subsample)]
            if up:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x if self.model is None else self.model(x)) + y


class BasicBlock(nn.Module):
    def __init__(self, in_filters: int, nb_filters: int, init_subsample: int = 1) -> None:
        super().__init__()
        self.conv1 = BnReluConv(in_filters, nb_filters, subsample=init_subsample)
        self.residual = BnReluConv(nb_filters, nb_filters)
        self.shortcut = Shortcut(in_filters, nb_filters, subsample=init_subsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x, self.residual(self.conv1(x)))


class UpBasicBlock(nn.Module):
    def __init__(self, in_filters: int, nb_filters: int) -> None:
        super().__init__()
        self.conv1 = UpBnReluConv(in_filters, nb_filters)
        self.residual = BnReluConv(nb_filters, nb_filters)
        self.shortcut = Shortcut(in_filters, nb_filters, up=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x, self.residual(self.conv1(x)))


class ResidualBlock(nn.Module):
    """`repetitions` basic blocks; the last one halves the size unless this is a first (full-size) block."""

    def __init__(self, in_filters: int, nb_filters: int, repetitions: int, is_first_layer: bool = False) -> None:
        super().__init__()
        self.model = nn.Sequential(*[
            BasicBlock(in_filters if i == 0 else nb_filters, nb_filters,
                       2 if i == repetitions - 1 and not is_first_layer else 1)
            for i in range(repetitions)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UpsamplingResidualBlock(nn.Module):
    def __init__(self, in_filters: int, nb_filters: int, repetitions: int) -> None:
        super().__init__()
        self.model = nn.Sequential(UpBasicBlock(in_filters, nb_filters),
                                   *[BasicBlock(nb_filters, nb_filters) for _ in range(repetitions - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResSkip(nn.Module):
    """The manga line network (`res_skip`): 1 grey channel in, 1 out, sides multiples of 16.
    `width` scales the channels (24 for the released network; tests build smaller ones)."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        c = [width, 2 * width, 4 * width, 8 * width, 16 * width]
        self.block0 = ResidualBlock(1, c[0], 2, is_first_layer=True)
        self.block1 = ResidualBlock(c[0], c[1], 3)
        self.block2 = ResidualBlock(c[1], c[2], 5)
        self.block3 = ResidualBlock(c[2], c[3], 7)
        self.block4 = ResidualBlock(c[3], c[4], 12)
        self.block5 = UpsamplingResidualBlock(c[4], c[3], 7)
        self.res1 = Shortcut(c[3], c[3])
        self.block6 = UpsamplingResidualBlock(c[3], c[2], 5)
        self.res2 = Shortcut(c[2], c[2])
        self.block7 = UpsamplingResidualBlock(c[2], c[1], 3)
        self.res3 = Shortcut(c[1], c[1])
        self.block8 = UpsamplingResidualBlock(c[1], c[0], 2)
        self.res4 = Shortcut(c[0], c[0])
        self.block9 = ResidualBlock(c[0], 16, 2, is_first_layer=True)
        self.conv15 = BnReluConv(16, 1, size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.block0(x)
        x1 = self.block1(x0)
        x2 = self.block2(x1)
        x3 = self.block3(x2)
        x4 = self.block4(x3)
        res1 = self.res1(x3, self.block5(x4))
        res2 = self.res2(x2, self.block6(res1))
        res3 = self.res3(x1, self.block7(res2))
        res4 = self.res4(x0, self.block8(res3))
        return self.conv15(self.block9(res4))


NETWORKS["erika.pth"] = ResSkip


@detector("lineart_anime_denoise", "Manga line extraction (learned; erika.pth): the grey picture's lines with "
          "screentone and noise left out, white on black.", params=(WEIGHTS_PARAM,),
          feeds=("control_v11p_sd15s2_lineart_anime",), needs_weights="erika.pth")
def lineart_anime_denoise(image: np.ndarray, weights: str = "") -> np.ndarray:
    net = _network("erika.pth", "lineart_anime_denoise", weights, "lineart_standard")
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    with torch.inference_mode():
        paper = net(torch.from_numpy(grey)[None, None])[0, 0].numpy()
    return (255 - paper).clip(0, 255).astype(np.uint8)

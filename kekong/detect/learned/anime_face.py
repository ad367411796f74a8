"""Anime face segmentation (`seg_anime_face`, the extension's `anime_face_segment`) as sd-webui-controlnet makes it.

The U-Net of siyeong0/Anime-Face-Segmentation (MIT) with the module names of bdsqlsz/qinglong_controlnet-lllite
`Annotators/UNet.pth`: torchvision's MobileNetV2 feature blocks 0–16 as the encoder (written here under
torchvision's names, so kekong needs no torchvision), a decoder of nearest ×2 upsampling, conv, instance
norm and leaky ReLU with skips, and a softmax over 7 classes. The extension resizes the picture's short
side to 512 (PIL bicubic, as torchvision's Resize on a PIL image), feeds it in [0, 1] unnormalised, and
paints each pixel's most likely class in its palette — background yellow (255, 255, 0), hair blue,
eye red, mouth white, face green, skin cyan, clothes magenta. The map is brought back to the processor
resolution with nearest neighbours (the extension crops its 512-based map at the processor-resolution
size, which cuts it at any resolution but 512).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from kekong.detect.learned import NETWORKS, WEIGHTS_PARAM, load_network
from kekong.detect.registry import detector
from kekong.errors import ParameterError
from kekong.models.weights import find_annotator
from kekong.sizes import MAX_WORK_SIDE

UNET_FILE = ("bdsqlsz/qinglong_controlnet-lllite", "Annotators/UNet.pth")
# background, hair, eye, mouth, face, skin, clothes: the extension's PALETTE, in class order
PALETTE = np.array([(255, 255, 0), (0, 0, 255), (255, 0, 0), (255, 255, 255), (0, 255, 0), (0, 255, 255),
                    (255, 0, 255)], np.uint8)
INPUT_SHORT_SIDE = 512


def conv_bn_relu6(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias), batch norm, ReLU6."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1×1 expansion (unless ×1), 3×3 depth-wise, 1×1 linear projection; residual when
    the shape is kept."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = [conv_bn_relu6(inp, hidden, kernel=1)] if expand_ratio != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenet_v2_blocks() -> list[nn.Module]:
    """MobileNetV2 (width 1.0) features[0..16]: the stem and the inverted residuals up to 160 channels."""
    blocks: list[nn.Module] = [conv_bn_relu6(3, 32, stride=2)]
    channels = 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2)):
        for i in range(n):
            blocks.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
            channels = c
    return blocks


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2), nn.Conv2d(in_ch, out_ch, 3, padding=1),
                         nn.InstanceNorm2d(out_ch), nn.LeakyReLU(0.1), nn.Dropout(p=0.2))


class AnimeFaceUNet(nn.Module):
    """7-class probabilities at the input's size (sides multiples of 32)."""

    def __init__(self) -> None:
        super().__init__()
        mob = mobilenet_v2_blocks()
        self.en_block0 = nn.Sequential(*mob[0:2])  # 16 channels, 1/2
        self.en_block1 = nn.Sequential(*mob[2:4])  # 24, 1/4
        self.en_block2 = nn.Sequential(*mob[4:7])  # 32, 1/8
        self.en_block3 = nn.Sequential(*mob[7:14])  # 96, 1/16
        self.en_block4 = nn.Sequential(*mob[14:17])  # 160, 1/32
        self.de_block4 = _up(160, 96)
        self.de_block3 = _up(96 * 2, 32)
        self.de_block2 = _up(32 * 2, 24)
        self.de_block1 = _up(24 * 2, 16)
        self.de_block0 = nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2), nn.Conv2d(16 * 2, 7, 3, padding=1),
                                       nn.Softmax2d())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.en_block0(x)
        e1 = self.en_block1(e0)
        e2 = self.en_block2(e1)
        e3 = self.en_block3(e2)
        d = self.en_block4(e3)
        for block, skip in ((self.de_block4, e3), (self.de_block3, e2), (self.de_block2, e1), (self.de_block1, e0)):
            d = F.interpolate(block(d), size=skip.shape[2:], mode="bilinear", align_corners=True)
            d = torch.cat((d, skip), 1)
        return self.de_block0(d)


NETWORKS["UNet.pth"] = AnimeFaceUNet


def network_input(image: np.ndarray) -> torch.Tensor:
    """torchvision's Resize(512, bicubic) + ToTensor on a PIL image: short side 512 (long side truncated);
    refused when that long side would pass MAX_WORK_SIDE (a thin image at a low processor resolution)."""
    h, w = image.shape[:2]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(INPUT_SHORT_SIDE * long / short)
    if new_long > MAX_WORK_SIDE:
        raise ParameterError(
            f"seg_anime_face: a {w}x{h} image is {new_long} px long at the network's {INPUT_SHORT_SIDE} px short "
            f"side, over {MAX_WORK_SIDE}; use an image of aspect ratio at most {MAX_WORK_SIDE // INPUT_SHORT_SIDE}:1")
    size = (new_long, INPUT_SHORT_SIDE) if h <= w else (INPUT_SHORT_SIDE, new_long)  # PIL: (width, height)
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
    return torch.from_numpy(resized.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


@detector("seg_anime_face", "Anime face segmentation (learned; Annotators/UNet.pth from bdsqlsz/qinglong_controlnet-"
          "lllite): background, hair, eye, mouth, face, skin and clothes in the extension's colours.",
          params=(WEIGHTS_PARAM,), needs_weights="UNet.pth")  # its ControlNet is an SDXL ControlLLLite: none
def seg_anime_face(image: np.ndarray, weights: str = "") -> np.ndarray:
    repo, path_in_repo = UNET_FILE
    path = find_annotator(path_in_repo, "seg_anime_face", explicit=weights or None, repo=repo,
                          stand_in="seg_person")
    net = load_network(str(path), "UNet.pth")
    with torch.inference_mode():
        probabilities = net(network_input(image))[0].numpy()
    return cv2.resize(paint(probabilities), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)


def paint(probabilities: np.ndarray) -> np.ndarray:
    """(7, H, W) class probabilities → uint8 HxWx3: each pixel in its most likely class's colour (first on ties)."""
    return PALETTE[probabilities.argmax(0)]

"""M-LSD (Gu et al., "Towards Light-weight and Real-time Line Segment Detection"), large variant, as
ControlNet's annotator runs it on `mlsd_large_512_fp32.pth`: a MobileNetV2 trunk (four input
channels: RGB and a plane of ones, TFLite-style padding on its stride-2 convolutions), an FPN-like
decoder, and a head whose centre heat map and four displacements give each segment's centre and
ends. Module and parameter names follow the checkpoint's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    def __init__(self, inplanes: int, outplanes: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> None:
        padding = 0 if stride == 2 else (kernel_size - 1) // 2  # stride 2 pads right/bottom only, as TFLite
        super().__init__(nn.Conv2d(inplanes, outplanes, kernel_size, stride, padding, groups=groups, bias=False),
                         nn.BatchNorm2d(outplanes), nn.ReLU6(inplace=True))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1))
        return super().forward(x)


class InvertedResidual(nn.Module):
    def __init__(self, inplanes: int, outplanes: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inplanes * expand
        self.residual = stride == 1 and inplanes == outplanes
        layers: list[nn.Module] = [ConvBNReLU(inplanes, hidden, kernel_size=1)] if expand != 1 else []
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, outplanes, 1, bias=False), nn.BatchNorm2d(outplanes)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """The trunk up to the 96-channel stage; features 1, 3, 6, 10 and 13 feed the decoder."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))  # t, c, n, s
    TAPS = (1, 3, 6, 10, 13)

    def __init__(self) -> None:
        super().__init__()
        features: list[nn.Module] = [ConvBNReLU(4, 32, stride=2)]
        channels = 32
        for expand, out, repeats, stride in self.SETTINGS:
            for index in range(repeats):
                features.append(InvertedResidual(channels, out, stride if index == 0 else 1, expand))
                channels = out
        self.features = nn.Sequential(*features)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, feature in enumerate(self.features):
            x = feature(x)
            if index in self.TAPS:
                taps.append(x)
        return taps


def _conv_bn(inplanes: int, outplanes: int, kernel: int, padding: int = 0, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, kernel, padding=padding, dilation=dilation),
                         nn.BatchNorm2d(outplanes), nn.ReLU(inplace=True))


class BlockTypeA(nn.Module):
    """Merge a skip feature (a) with the deeper one (b), upsampled ×2."""

    def __init__(self, in_a: int, in_b: int, out_a: int, out_b: int, upscale: bool = True) -> None:
        super().__init__()
        self.conv1 = _conv_bn(in_b, out_b, 1)
        self.conv2 = _conv_bn(in_a, out_a, 1)
        self.upscale = upscale

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        b, a = self.conv1(b), self.conv2(a)
        if self.upscale:
            b = F.interpolate(b, scale_factor=2.0, mode="bilinear", align_corners=True)
        return torch.cat((a, b), dim=1)


class BlockTypeB(nn.Module):
    def __init__(self, inplanes: int, outplanes: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(inplanes, inplanes, 3, padding=1)
        self.conv2 = _conv_bn(inplanes, outplanes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x) + x)


class BlockTypeC(nn.Module):
    def __init__(self, inplanes: int, outplanes: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(inplanes, inplanes, 3, padding=5, dilation=5)
        self.conv2 = _conv_bn(inplanes, inplanes, 3, padding=1)
        self.conv3 = nn.Conv2d(inplanes, outplanes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))


class MLSDLarge(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = MobileNetV2()
        self.block15 = BlockTypeA(64, 96, 64, 64, upscale=False)
        self.block16 = BlockTypeB(128, 64)
        self.block17 = BlockTypeA(32, 64, 64, 64)
        self.block18 = BlockTypeB(128, 64)
        self.block19 = BlockTypeA(24, 64, 64, 64)
        self.block20 = BlockTypeB(128, 64)
        self.block21 = BlockTypeA(16, 64, 64, 64)
        self.block22 = BlockTypeB(128, 64)
        self.block23 = BlockTypeC(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 9, H/2, W/2): centre logits, then (start x, y, end x, y) displacements, then line maps."""
        c1, c2, c3, c4, c5 = self.backbone(x)
        x = self.block16(self.block15(c4, c5))
        x = self.block18(self.block17(c3, x))
        x = self.block20(self.block19(c2, x))
        x = self.block22(self.block21(c1, x))
        return self.block23(x)[:, 7:]


@torch.no_grad()
def segments(model: MLSDLarge, image: np.ndarray, score_threshold: float = 0.1, distance_threshold: float = 20.0,
             top_k: int = 200, window: int = 3) -> np.ndarray:
    """Line segments (N×4: x1, y1, x2, y2, image pixels) as the annotator decodes them: centre peaks
    (local maxima of the sigmoid heat map, the top 200) scoring above `score_threshold`, whose
    segment is longer than `distance_threshold` (in half-resolution pixels)."""
    height, width = image.shape[:2]
    planes = np.concatenate([image.astype(np.float32), np.full((height, width, 1), 255.0, np.float32)], axis=2)
    batch = torch.from_numpy(planes / 127.5 - 1.0).permute(2, 0, 1)[None]
    out = model(batch)[0]
    heat = torch.sigmoid(out[0])
    peaks = F.max_pool2d(heat[None, None], window, stride=1, padding=(window - 1) // 2)[0, 0]
    heat = (heat * (peaks == heat)).flatten()
    scores, indices = torch.topk(heat, min(top_k, heat.numel()))
    map_w = out.shape[2]
    ys, xs = (indices // map_w).numpy(), (indices % map_w).numpy()
    displacement = out[1:5].permute(1, 2, 0).numpy()
    found = []
    for y, x, score in zip(ys, xs, scores.numpy(), strict=True):
        dx0, dy0, dx1, dy1 = displacement[y, x]
        if score > score_threshold and np.hypot(dx0 - dx1, dy0 - dy1) > distance_threshold:
            found.append((x + dx0, y + dy0, x + dx1, y + dy1))
    lines = 2 * np.asarray(found, np.float32).reshape(-1, 4)  # the heat map is half the input size
    return lines

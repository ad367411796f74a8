"""LeReS (Yin et al., "Learning to Recover 3D Scene Shape from a Single Image", CVPR 2021): the
depth network ControlNet's annotator runs on `res101.pth` — a ResNeXt-101 32×8d encoder (no
classifier head) and the decoder of feature-transfer blocks (FTB), fusion modules (FFM) and an
adaptive output (AO) head, as AdelaiDepth's `multi_depth_model_woauxi.py` / `network_auxi.py` define it.

Module names follow the checkpoint's: `depth_model.encoder_modules.encoder.layer1.0.conv1.weight`,
`depth_model.decoder_modules.ffm2.ftb1.conv_branch.1.weight`, …. `LeresConfig` scales the widths
and block counts (the tests build a tiny one); `FULL` is the released network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LeresConfig:
    layers: tuple[int, int, int, int] = (3, 4, 23, 3)  # bottlenecks per stage: ResNeXt-101
    planes: int = 64  # the first stage's planes; every width below scales with it
    groups: int = 32  # ResNeXt cardinality
    width_per_group: int = 8

    @property
    def features(self) -> tuple[int, int, int, int]:
        """Channels of the four encoder stages (256, 512, 1024, 2048 at full size)."""
        return tuple(self.planes * 4 * 2**i for i in range(4))  # type: ignore[return-value]

    @property
    def mids(self) -> tuple[int, int, int, int]:
        """The decoder's widths (256, 256, 256, 512 at full size)."""
        return (self.planes * 4,) * 3 + (self.planes * 8,)  # type: ignore[return-value]


FULL = LeresConfig()


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int, groups: int, width_per_group: int, downsample: nn.Module | None
    ) -> None:
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNeXt(nn.Module):
    """The encoder: four stages' outputs at 1/4, 1/8, 1/16, 1/32."""

    def __init__(self, config: LeresConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, config.planes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(config.planes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = config.planes
        for index, blocks in enumerate(config.layers):
            planes, stride = config.planes * 2**index, 1 if index == 0 else 2
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
            stage = [Bottleneck(inplanes, planes, stride, config.groups, config.width_per_group, downsample)]
            stage += [
                Bottleneck(planes * 4, planes, 1, config.groups, config.width_per_group, None) for _ in range(1, blocks)
            ]
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
            inplanes = planes * 4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = []
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
            features.append(x)
        return features


def _conv3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)


def _up2() -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)


class FTB(nn.Module):
    """Feature transfer block: a 3×3 conv and a residual conv-BN-conv branch."""

    def __init__(self, inchannels: int, midchannels: int) -> None:
        super().__init__()
        self.conv1 = _conv3(inchannels, midchannels)
        self.conv_branch = nn.Sequential(
            nn.ReLU(inplace=True),
            _conv3(midchannels, midchannels),
            nn.BatchNorm2d(midchannels),
            nn.ReLU(inplace=True),
            _conv3(midchannels, midchannels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.relu(x + self.conv_branch(x))


class FFM(nn.Module):
    """Feature fusion: FTB of the skip, plus the coarser map, FTB, ×2 upsampling."""

    def __init__(self, inchannels: int, midchannels: int, outchannels: int) -> None:
        super().__init__()
        self.ftb1 = FTB(inchannels, midchannels)
        self.ftb2 = FTB(midchannels, outchannels)
        self.upsample = _up2()

    def forward(self, low_x: torch.Tensor, high_x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.ftb2(self.ftb1(low_x) + high_x))


class AO(nn.Module):
    """Adaptive output: conv-BN-ReLU-conv to one channel, ×2 upsampling to the input's size."""

    def __init__(self, inchannels: int) -> None:
        super().__init__()
        self.adapt_conv = nn.Sequential(
            _conv3(inchannels, inchannels // 2),
            nn.BatchNorm2d(inchannels // 2),
            nn.ReLU(inplace=True),
            _conv3(inchannels // 2, 1),
            _up2(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapt_conv(x)


class Decoder(nn.Module):
    def __init__(self, config: LeresConfig) -> None:
        super().__init__()
        features, mids = config.features, config.mids
        self.conv = FTB(features[3], mids[3])
        self.conv1 = _conv3(mids[3], mids[2])
        self.upsample = _up2()
        self.ffm2 = FFM(features[2], mids[2], mids[2])
        self.ffm1 = FFM(features[1], mids[1], mids[1])
        self.ffm0 = FFM(features[0], mids[0], mids[0])
        self.outconv = AO(mids[0])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.upsample(self.conv1(self.conv(features[3])))  # 1/32 → 1/16
        x = self.ffm2(features[2], x)  # 1/8
        x = self.ffm1(features[1], x)  # 1/4
        x = self.ffm0(features[0], x)  # 1/2
        return self.outconv(x)  # full size


class DepthNet(nn.Module):
    def __init__(self, config: LeresConfig) -> None:
        super().__init__()
        self.encoder = ResNeXt(config)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)


class DepthModel(nn.Module):
    """Image (1×3×H×W, H and W multiples of 32) → relative depth (1×1×H×W); larger = farther."""

    def __init__(self, config: LeresConfig) -> None:
        super().__init__()
        self.encoder_modules = DepthNet(config)
        self.decoder_modules = Decoder(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder_modules(self.encoder_modules(x))


class RelDepthModel(nn.Module):
    """The checkpoint's outer module (its keys start with `depth_model.`)."""

    def __init__(self, config: LeresConfig = FULL) -> None:
        super().__init__()
        self.depth_model = DepthModel(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.depth_model(x)

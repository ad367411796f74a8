"""The learned annotators' networks, with module names matching their released checkpoints
(lllyasviel/Annotators: ControlNetHED.pth, sk_model.pth, sk_model2.pth, netG.pth)."""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F


class HEDBlock(nn.Module):
    """`layers` 3×3 convs + ReLU, with a 1×1 side projection to one edge channel."""

    def __init__(self, in_channels: int, out_channels: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *[nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1)
              for i in range(layers)])
        self.projection = nn.Conv2d(out_channels, 1, 1)

    def forward(self, x: torch.Tensor, down: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.max_pool2d(x, 2, 2) if down else x
        for conv in self.convs:
            h = F.relu(conv(h))
        return h, self.projection(h)


class ControlNetHED(nn.Module):
    """ControlNet 1.1's Apache-2 re-implementation of HED: five VGG-like stages, side outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.block1 = HEDBlock(3, 64, 2)
        self.block2 = HEDBlock(64, 128, 2)
        self.block3 = HEDBlock(128, 256, 3)
        self.block4 = HEDBlock(256, 512, 3)
        self.block5 = HEDBlock(512, 512, 3)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # x: (1, 3, H, W) in 0..255
        h, p1 = self.block1(x - self.norm)
        h, p2 = self.block2(h, down=True)
        h, p3 = self.block3(h, down=True)
        h, p4 = self.block4(h, down=True)
        _, p5 = self.block5(h, down=True)
        return [p1, p2, p3, p4, p5]


class ResidualBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class LineartGenerator(nn.Module):
    """Informative-drawings generator (lineart realistic/coarse): photo → lines, 1 = paper."""

    def __init__(self, residual_blocks: int = 3) -> None:
        super().__init__()
        self.model0 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, 64, 7),
                                    nn.InstanceNorm2d(64), nn.ReLU(inplace=True))
        down: list[nn.Module] = []
        for channels in (64, 128):
            down += [nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1),
                     nn.InstanceNorm2d(channels * 2), nn.ReLU(inplace=True)]
        self.model1 = nn.Sequential(*down)
        self.model2 = nn.Sequential(*[ResidualBlock(256) for _ in range(residual_blocks)])
        up: list[nn.Module] = []
        for channels in (256, 128):
            up += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1,
                                      output_padding=1),
                   nn.InstanceNorm2d(channels // 2), nn.ReLU(inplace=True)]
        self.model3 = nn.Sequential(*up)
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, 1, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (1, 3, H, W) in 0..1
        return self.model4(self.model3(self.model2(self.model1(self.model0(x)))))


_InstanceNorm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


class UnetSkipBlock(nn.Module):
    """pix2pix U-Net block: down → submodule → up, concatenated with its input (not outermost)."""

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None = None,
                 in_channels: int | None = None, outermost: bool = False,
                 innermost: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        in_channels = in_channels or outer
        downconv = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=True)
        if outermost:
            layers = [downconv, submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=True),
                      _InstanceNorm(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), downconv, _InstanceNorm(inner), submodule,
                      nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=True),
                      _InstanceNorm(outer)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class AnimeLineartUnet(nn.Module):
    """The anime line-art annotator: a pix2pix U-Net with 8 downsamplings, 64 base filters."""

    def __init__(self, downs: int = 8, base: int = 64) -> None:
        super().__init__()
        block = UnetSkipBlock(base * 8, base * 8, innermost=True)
        for _ in range(downs - 5):
            block = UnetSkipBlock(base * 8, base * 8, block)
        block = UnetSkipBlock(base * 4, base * 8, block)
        block = UnetSkipBlock(base * 2, base * 4, block)
        block = UnetSkipBlock(base, base * 2, block)
        self.model = UnetSkipBlock(1, base, block, in_channels=3, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (1, 3, H, W) in −1..1
        return self.model(x)

"""The merge network of BoostingMonocularDepth (Miangoleh et al., CVPR 2021) that `depth_leres++`
runs on `latest_net_G.pth`: pix2pix's U-Net generator as the annotator builds it
(`define_G(2, 1, 64, 'unet_1024', norm='none')`): ten ×2 downsamplings (1024² → 1²), no
normalisation layers (identities that hold no weights), no dropout, convolutions without bias
except the outermost transposed one, tanh output.

Input: two depth estimates (low and high resolution) scaled to [−1, 1], 1×2×1024×1024; output the
merged estimate in [−1, 1]. Module names follow the checkpoint's (`model.model.1.model.3.weight`, …);
`ngf` scales the widths (the tests build a narrow one).
"""

from __future__ import annotations

import torch
from torch import nn


class UnetSkipConnectionBlock(nn.Module):
    """down → (inner block) → up, concatenated with its input (except the outermost)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        downconv = nn.Conv2d(outer_nc if input_nc is None else input_nc, inner_nc, 4, stride=2, padding=1, bias=False)
        if outermost:
            layers = [
                downconv,
                submodule,
                nn.ReLU(True),
                nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1),
                nn.Tanh(),
            ]
        elif innermost:  # the norm layers of norm='none' are identities: they keep their places in the list
            layers = [
                nn.LeakyReLU(0.2, True),
                downconv,
                nn.ReLU(True),
                nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=False),
                nn.Identity(),
            ]
        else:
            layers = [
                nn.LeakyReLU(0.2, True),
                downconv,
                nn.Identity(),
                submodule,
                nn.ReLU(True),
                nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=False),
                nn.Identity(),
            ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc: int = 2, output_nc: int = 1, num_downs: int = 10, ngf: int = 64) -> None:
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

"""PiDiNet (Su et al., "Pixel Difference Networks for Efficient Edge Detection"), as ControlNet's
annotator runs it: the `table5_pidinet.pth` checkpoint, configuration carv4 (central, angular and
radial difference convolutions, then a vanilla one, four times), 60 channels, dilated context
(CDCM) and spatial attention (CSAM) on each of the four stages, the classifier's sigmoid as the
soft edge map. Module and parameter names follow the checkpoint's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CARV4 = ("cd", "ad", "rd", "cv") * 4
_AD_ORDER = [3, 0, 1, 6, 4, 2, 7, 8, 5]  # each tap minus its clockwise neighbour
_RD_OUTER = [0, 2, 4, 10, 14, 20, 22, 24]  # where a 3×3 ring lands on a 5×5 kernel
_RD_INNER = [6, 7, 8, 11, 13, 16, 17, 18]


def pixel_difference(kind: str, x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 1,
                     groups: int = 1) -> torch.Tensor:
    """A convolution over pixel differences; every kind answers 0 to a flat image (except `cv`)."""
    if kind == "cv":
        return F.conv2d(x, weight, None, stride, padding, 1, groups)
    if kind == "cd":  # central: Σ w·(x − x_centre)
        centre = F.conv2d(x, weight.sum(dim=(2, 3), keepdim=True), None, stride, 0, 1, groups)
        return F.conv2d(x, weight, None, stride, padding, 1, groups) - centre
    out, inp = weight.shape[:2]
    flat = weight.reshape(out, inp, -1)
    if kind == "ad":  # angular: differences between neighbours around the ring
        return F.conv2d(x, (flat - flat[:, :, _AD_ORDER]).reshape(weight.shape), None, stride, padding, 1, groups)
    if kind == "rd":  # radial: outer ring minus inner ring, on a 5×5 kernel
        kernel = weight.new_zeros(out, inp, 25)
        kernel[:, :, _RD_OUTER] = flat[:, :, 1:]
        kernel[:, :, _RD_INNER] = -flat[:, :, 1:]
        return F.conv2d(x, kernel.reshape(out, inp, 5, 5), None, stride, 2 * padding, 1, groups)
    raise ValueError(kind)


class PDC(nn.Module):
    def __init__(self, kind: str, inplanes: int, outplanes: int, groups: int = 1) -> None:
        super().__init__()
        self.kind, self.groups = kind, groups
        self.weight = nn.Parameter(torch.empty(outplanes, inplanes // groups, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_difference(self.kind, x, self.weight, groups=self.groups)


class PDCBlock(nn.Module):
    def __init__(self, kind: str, inplanes: int, outplanes: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        if stride > 1:
            self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
            self.shortcut = nn.Conv2d(inplanes, outplanes, kernel_size=1)
        self.conv1 = PDC(kind, inplanes, inplanes, groups=inplanes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(inplanes, outplanes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = self.pool(x)
        y = self.conv2(self.relu2(self.conv1(x)))
        return y + (self.shortcut(x) if self.stride > 1 else x)


class CDCM(nn.Module):
    """Compact dilation convolution module: four dilated 3×3 views of a 1×1 reduction."""

    def __init__(self, inplanes: int, outplanes: int) -> None:
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(inplanes, outplanes, kernel_size=1)
        for index, dilation in enumerate((5, 7, 9, 11), start=1):
            setattr(self, f"conv2_{index}", nn.Conv2d(outplanes, outplanes, 3, dilation=dilation, padding=dilation,
                                                      bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu1(x))
        return sum(getattr(self, f"conv2_{i}")(x) for i in range(1, 5))


class CSAM(nn.Module):
    """Compact spatial attention: a one-channel sigmoid gate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(channels, 4, kernel_size=1)
        self.conv2 = nn.Conv2d(4, 1, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv2(self.conv1(self.relu1(x))))


class MapReduce(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PiDiNet(nn.Module):
    def __init__(self, width: int = 60, kinds: tuple[str, ...] = CARV4, dilation: int = 24) -> None:
        super().__init__()
        self.init_block = PDC(kinds[0], 3, width)
        widths = (width, 2 * width, 4 * width, 4 * width)
        inplanes = width
        for stage, outplanes in enumerate(widths, start=1):
            for index in range(1, 4 if stage == 1 else 5):
                kind = kinds[(stage - 1) * 4 + index - (0 if stage == 1 else 1)]
                stride = 2 if index == 1 and stage > 1 else 1
                setattr(self, f"block{stage}_{index}", PDCBlock(kind, inplanes, outplanes, stride))
                inplanes = outplanes
        self.dilations = nn.ModuleList(CDCM(w, dilation) for w in widths)
        self.attentions = nn.ModuleList(CSAM(dilation) for _ in widths)
        self.conv_reduces = nn.ModuleList(MapReduce(dilation) for _ in widths)
        self.classifier = nn.Conv2d(4, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Five sigmoid edge maps at the input size: one per stage, and the fused one (last)."""
        size = x.shape[2:]
        x = self.init_block(x)
        sides = []
        for stage in range(1, 5):
            for index in range(1, 4 if stage == 1 else 5):
                x = getattr(self, f"block{stage}_{index}")(x)
            side = self.conv_reduces[stage - 1](self.attentions[stage - 1](self.dilations[stage - 1](x)))
            sides.append(F.interpolate(side, size, mode="bilinear", align_corners=False))
        sides.append(self.classifier(torch.cat(sides, dim=1)))
        return [torch.sigmoid(side) for side in sides]

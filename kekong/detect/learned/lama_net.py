"""LaMa's generator (advimman/lama, Apache-2): the FFC-ResNet "big-lama" network sd-webui-controlnet's
annotator/lama builds from its config.yaml, with the module names of lllyasviel/Annotators
`ControlNetLama.pth` (`model.<i>.…`).

Fast Fourier convolutions (Chi et al. 2020) split the channels into a local part (ordinary 3×3 convs) and a
global part whose spectral transform is a 1×1 conv over the real FFT of the feature map (torch.fft,
orthonormal), so every output pixel sees the whole image. The extension's config: 4 input channels (RGB with
the hole zeroed, and the mask), 64 base channels, 3 downsamplings (the last one starts the 75 % global
part), 18 FFC residual blocks at 512 channels, 3 transposed-conv upsamplings, a 7×7 conv to RGB and a sigmoid.
Local-fourier units (LFU), squeeze-excitation and spatial transforms are off in it and are not built.
`ngf` and `n_blocks` shrink the network for tests (the same module names).
"""

from __future__ import annotations

import torch
from torch import nn

Pair = tuple[torch.Tensor | int, torch.Tensor | int]  # (local, global); 0 where a part has no channels


class FourierUnit(nn.Module):
    """1×1 conv + batch norm + ReLU on the stacked real and imaginary parts of the feature map's 2-D rFFT."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(in_channels * 2, out_channels * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels * 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, h, w = x.shape
        spectrum = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
        stacked = torch.stack((spectrum.real, spectrum.imag), dim=-1).permute(0, 1, 4, 2, 3)  # (B, C, 2, h, w/2+1)
        stacked = stacked.reshape(batch, -1, *stacked.shape[3:])
        stacked = self.relu(self.bn(self.conv_layer(stacked)))
        stacked = stacked.view(batch, -1, 2, *stacked.shape[2:]).permute(0, 1, 3, 4, 2).contiguous()
        return torch.fft.irfftn(torch.complex(stacked[..., 0], stacked[..., 1]), s=(h, w), dim=(-2, -1),
                                norm="ortho")


class SpectralTransform(nn.Module):
    """The global→global path: 1×1 down to half the channels, x + FourierUnit(x), 1×1 back up."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.downsample = nn.Identity()  # stride 1 everywhere in the generator's global paths
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, half, kernel_size=1, bias=False), nn.BatchNorm2d(half),
                                   nn.ReLU(inplace=True))
        self.fu = FourierUnit(half, half)
        self.conv2 = nn.Conv2d(half, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.downsample(x))
        return self.conv2(x + self.fu(x))


def _conv_or_identity(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, dilation: int) -> nn.Module:
    if in_ch == 0 or out_ch == 0:
        return nn.Identity()
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, bias=False, padding_mode="reflect")


class FFC(nn.Module):
    """A fast Fourier convolution: local→local, local→global, global→local convs and global→global spectral."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1) -> None:
        super().__init__()
        in_cg = int(in_channels * ratio_gin)
        in_cl = in_channels - in_cg
        out_cg = int(out_channels * ratio_gout)
        out_cl = out_channels - out_cg
        self.ratio_gin, self.ratio_gout, self.global_in_num = ratio_gin, ratio_gout, in_cg
        self.convl2l = _conv_or_identity(in_cl, out_cl, kernel_size, stride, padding, dilation)
        self.convl2g = _conv_or_identity(in_cl, out_cg, kernel_size, stride, padding, dilation)
        self.convg2l = _conv_or_identity(in_cg, out_cl, kernel_size, stride, padding, dilation)
        self.convg2g = nn.Identity() if in_cg == 0 or out_cg == 0 else SpectralTransform(in_cg, out_cg)
        self.gate = nn.Identity()  # gated=False in the config

    def forward(self, x: Pair | torch.Tensor) -> Pair:
        x_l, x_g = x if isinstance(x, tuple) else (x, 0)
        out_l: torch.Tensor | int = 0
        out_g: torch.Tensor | int = 0
        if self.ratio_gout != 1:
            out_l = self.convl2l(x_l) + self.convg2l(x_g)
        if self.ratio_gout != 0:
            out_g = self.convl2g(x_l) + self.convg2g(x_g)
        return out_l, out_g


class FFC_BN_ACT(nn.Module):  # the reference's class name
    """FFC, then batch norm and ReLU on each part that has channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1) -> None:
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation)
        global_channels = int(out_channels * ratio_gout)
        self.bn_l = nn.Identity() if ratio_gout == 1 else nn.BatchNorm2d(out_channels - global_channels)
        self.bn_g = nn.Identity() if ratio_gout == 0 else nn.BatchNorm2d(global_channels)
        self.act_l = nn.Identity() if ratio_gout == 1 else nn.ReLU(inplace=True)
        self.act_g = nn.Identity() if ratio_gout == 0 else nn.ReLU(inplace=True)

    def forward(self, x: Pair | torch.Tensor) -> Pair:
        x_l, x_g = self.ffc(x)
        return self.act_l(self.bn_l(x_l)), self.act_g(self.bn_g(x_g))


class FFCResnetBlock(nn.Module):
    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        self.conv1 = FFC_BN_ACT(dim, dim, 3, ratio, ratio, padding=1)
        self.conv2 = FFC_BN_ACT(dim, dim, 3, ratio, ratio, padding=1)

    def forward(self, x: Pair) -> Pair:
        x_l, x_g = x
        y_l, y_g = self.conv2(self.conv1((x_l, x_g)))
        return x_l + y_l, x_g + y_g


class ConcatTupleLayer(nn.Module):
    def forward(self, x: Pair) -> torch.Tensor:
        x_l, x_g = x
        return torch.cat([x_l, x_g], dim=1) if torch.is_tensor(x_g) else x_l  # type: ignore[list-item,return-value]


class LamaGenerator(nn.Module):
    """FFCResNetGenerator with the extension's config: (1, 4, H, W) in, RGB in [0, 1] out; H, W multiples of 8."""

    def __init__(self, ngf: int = 64, n_blocks: int = 18, ratio: float = 0.75) -> None:
        super().__init__()
        model: list[nn.Module] = [nn.ReflectionPad2d(3), FFC_BN_ACT(4, ngf, 7, 0, 0)]
        for i in range(3):
            model.append(FFC_BN_ACT(ngf * 2 ** i, ngf * 2 ** (i + 1), 3, 0, ratio if i == 2 else 0, stride=2,
                                    padding=1))
        model += [FFCResnetBlock(ngf * 8, ratio) for _ in range(n_blocks)]
        model.append(ConcatTupleLayer())
        for i in range(3):
            channels = ngf * 2 ** (3 - i)
            model += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1),
                      nn.BatchNorm2d(channels // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Sigmoid()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

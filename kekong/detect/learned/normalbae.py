"""NormalBAE (Bae et al., "Estimating and Exploiting the Aleatoric Uncertainty in Surface Normal
Estimation", ICCV 2021), as ControlNet's annotator runs it on `scannet.pt`: an EfficientNet-B5
encoder (geffnet's `tf_efficientnet_b5_ap`), a U-Net-like decoder to 1/8 resolution, and three
per-pixel MLP refinements (1/4, 1/2, full) that each see the upsampled estimate so far.

Every output has four channels: a unit normal and a concentration κ (its confidence). At
inference every pixel is refined; the uncertainty-guided point sampling of training is not needed.
Module and parameter names follow the checkpoint's (`encoder.original_model.*`, `decoder.*`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# EfficientNet-B5 stages whose outputs feed the decoder: feature-list indices (0 is the image, then
# conv_stem, bn1, act1, the seven block stages, conv_head, …) and their channels.
SKIPS = {"half": (4, 24), "quarter": (5, 40), "eighth": (6, 64), "sixteenth": (8, 176), "deepest": (11, 2048)}


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        import geffnet  # installed --no-deps by the Makefile (its torchvision requirement is unused)

        model = geffnet.tf_efficientnet_b5_ap(pretrained=False)
        model.global_pool, model.classifier = nn.Identity(), nn.Identity()
        self.original_model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        for name, module in self.original_model.named_children():
            if name == "blocks":
                for stage in module:
                    features.append(stage(features[-1]))
            else:
                features.append(module(features[-1]))
        return features


class UpSampleBN(nn.Module):
    """Upsample to the skip's size, concatenate, two 3×3 conv + BatchNorm + LeakyReLU."""

    def __init__(self, skip_input: int, output_features: int) -> None:
        super().__init__()
        self._net = nn.Sequential(
            nn.Conv2d(skip_input, output_features, 3, padding=1), nn.BatchNorm2d(output_features), nn.LeakyReLU(),
            nn.Conv2d(output_features, output_features, 3, padding=1), nn.BatchNorm2d(output_features),
            nn.LeakyReLU())

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=True)
        return self._net(torch.cat([up, skip], dim=1))


def _refiner(in_channels: int) -> nn.Sequential:
    """A per-pixel MLP (1×1 Conv1d) from features + the current estimate to a new estimate."""
    return nn.Sequential(nn.Conv1d(in_channels + 4, 128, 1), nn.ReLU(), nn.Conv1d(128, 128, 1), nn.ReLU(),
                         nn.Conv1d(128, 128, 1), nn.ReLU(), nn.Conv1d(128, 4, 1))


def normalise(raw: torch.Tensor, min_kappa: float = 0.01) -> torch.Tensor:
    """Channels 0–2 → a unit vector; channel 3 → κ > 0."""
    normal = raw[:, :3] / (raw[:, :3].norm(dim=1, keepdim=True) + 1e-10)
    return torch.cat([normal, F.elu(raw[:, 3:]) + 1.0 + min_kappa], dim=1)


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv2 = nn.Conv2d(2048, 2048, 1)
        self.up1 = UpSampleBN(2048 + 176, 1024)
        self.up2 = UpSampleBN(1024 + 64, 512)
        self.up3 = UpSampleBN(512 + 40, 256)
        self.up4 = UpSampleBN(256 + 24, 128)
        self.out_conv_res8 = nn.Conv2d(512, 4, 3, padding=1)
        self.out_conv_res4 = _refiner(512)
        self.out_conv_res2 = _refiner(256)
        self.out_conv_res1 = _refiner(128)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        half, quarter, eighth, sixteenth, deepest = (features[index] for index, _ in SKIPS.values())
        d1 = self.up1(self.conv2(deepest), sixteenth)
        d2 = self.up2(d1, eighth)
        d3 = self.up3(d2, quarter)
        d4 = self.up4(d3, half)
        estimate = normalise(self.out_conv_res8(d2))
        for feature_map, refine in ((d2, self.out_conv_res4), (d3, self.out_conv_res2), (d4, self.out_conv_res1)):
            estimate = refine_all_pixels(refine, feature_map, estimate)
        return estimate


def refine_all_pixels(refine: nn.Sequential, feature_map: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Double the resolution of features and estimate, and refine the estimate at every pixel."""
    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)

    joined = torch.cat([up(feature_map), up(estimate)], dim=1)
    batch, channels, height, width = joined.shape
    return normalise(refine(joined.view(batch, channels, -1))).view(batch, 4, height, width)


class NormalBae(nn.Module):
    """Image (ImageNet-normalised RGB, 1×3×H×W, H and W multiples of 32) → (1, 4, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

"""DSINE (Bae & Davison, "Rethinking Inductive Biases for Surface Normal Estimation", CVPR 2024), the
network `normal_dsine` runs on `dsine.pt`: an EfficientNet-B5 encoder (geffnet's
`tf_efficientnet_b5_ap`, as NormalBAE's), a decoder that sees the camera rays' (u, v) at 1/32, 1/16
and 1/8, a ray-ReLU that keeps every normal facing the camera, and `num_iter` refinements: a ConvGRU
updates a hidden state, each pixel's normal becomes a weighted sum of its 5×5 neighbours' normals
rotated about axes and by angles the network predicts (axes constrained to the local plane through
the neighbour's ray), and a learned convex ×8 upsampling gives the full-resolution map.

Module names are the checkpoint's (`encoder.original_model.blocks.…`, `decoder.up1._net.0.weight`,
`gru.convz.weight`, `prob_head.0.weight`, …). `DsineConfig` scales the encoder (the tests build a
tiny one); `DSINE_B5` is the released network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kekong.detect.learned import normalbae

PS = 5  # neighbourhood of the refinement
RATIO = 8  # the decoder's output is at 1/8


@dataclass(frozen=True)
class DsineConfig:
    channel_multiplier: float = 1.6  # EfficientNet-B5
    depth_multiplier: float = 2.2

    def channels(self) -> tuple[int, int, int]:
        """Channels of the encoder features the decoder reads: 1/32 (conv_head), 1/16, 1/8."""
        from geffnet.efficientnet_builder import round_channels

        return tuple(round_channels(c, self.channel_multiplier, 8, None) for c in (1280, 112, 40))  # type: ignore


DSINE_B5 = DsineConfig()


class Encoder(normalbae.Encoder):
    """geffnet's tf_efficientnet_b5_ap at the config's multipliers (B5: identical), every stage's output."""

    def __init__(self, config: DsineConfig) -> None:
        nn.Module.__init__(self)
        from geffnet.efficientnet_builder import BN_EPS_TF_DEFAULT
        from geffnet.gen_efficientnet import _gen_efficientnet  # tf_efficientnet_b5_ap's own builder

        model = _gen_efficientnet(
            "tf_efficientnet_b5_ap",
            channel_multiplier=config.channel_multiplier,
            depth_multiplier=config.depth_multiplier,
            pretrained=False,
            bn_eps=BN_EPS_TF_DEFAULT,
            pad_type="same",
        )
        model.global_pool, model.classifier = nn.Identity(), nn.Identity()
        self.original_model = model


class Conv2dWS(nn.Conv2d):
    """Convolution with weight standardisation (zero mean, unit std per output channel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight - self.weight.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        std = weight.view(weight.size(0), -1).std(dim=1).view(-1, 1, 1, 1) + 1e-5
        return F.conv2d(x, weight / std.expand_as(weight), self.bias, self.stride, self.padding)


class UpSampleGN(nn.Module):
    def __init__(self, skip_input: int, output_features: int) -> None:
        super().__init__()
        self._net = nn.Sequential(
            Conv2dWS(skip_input, output_features, 3, padding=1),
            nn.GroupNorm(8, output_features),
            nn.LeakyReLU(),
            Conv2dWS(output_features, output_features, 3, padding=1),
            nn.GroupNorm(8, output_features),
            nn.LeakyReLU(),
        )

    def forward(self, x: torch.Tensor, concat_with: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, size=concat_with.shape[2:], mode="bilinear", align_corners=False)
        return self._net(torch.cat([up, concat_with], dim=1))


def prediction_head(input_dim: int, hidden_dim: int, output_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(input_dim, hidden_dim, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden_dim, hidden_dim, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden_dim, output_dim, 1),
    )


class Decoder(nn.Module):
    def __init__(self, config: DsineConfig) -> None:
        super().__init__()
        bottleneck, sixteenth, eighth = config.channels()
        nf = bottleneck
        self.conv2 = nn.Conv2d(bottleneck + 2, nf, 1)
        self.up1 = UpSampleGN(nf + sixteenth + 2, nf // 2)
        self.up2 = UpSampleGN(nf // 2 + eighth + 2, nf // 4)
        self.normal_head = prediction_head(nf // 4 + 2, 128, 3)
        self.feature_head = prediction_head(nf // 4 + 2, 128, 64)
        self.hidden_head = prediction_head(nf // 4 + 2, 128, 64)

    def forward(
        self, features: list[torch.Tensor], uvs: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        uv_32, uv_16, uv_8 = uvs
        x = self.conv2(torch.cat([features[11], uv_32], dim=1))  # conv_head's output, 1/32
        x = self.up1(x, torch.cat([features[8], uv_16], dim=1))  # block 4, 1/16
        x = self.up2(x, torch.cat([features[6], uv_8], dim=1))  # block 2, 1/8
        x = torch.cat([x, uv_8], dim=1)
        return F.normalize(self.normal_head(x), dim=1), self.feature_head(x), self.hidden_head(x)


class ConvGRU(nn.Module):
    def __init__(self, hidden_dim: int, input_dim: int, ks: int) -> None:
        super().__init__()
        self.convz = nn.Conv2d(hidden_dim + input_dim, hidden_dim, ks, padding=(ks - 1) // 2)
        self.convr = nn.Conv2d(hidden_dim + input_dim, hidden_dim, ks, padding=(ks - 1) // 2)
        self.convq = nn.Conv2d(hidden_dim + input_dim, hidden_dim, ks, padding=(ks - 1) // 2)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z, r = torch.sigmoid(self.convz(hx)), torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


def ray_relu(normal: torch.Tensor, ray: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Raise the normal's component along the viewing ray to at least `eps` (it must face the camera)."""
    cos = torch.cosine_similarity(normal, ray, dim=1).unsqueeze(1)
    return F.normalize(normal + ray * (torch.relu(cos - eps) + eps) - ray * cos, dim=1)


def convex_upsampling(out: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Each of the k×k sub-pixels a softmax-weighted mix of the 3×3 coarse neighbours (replicate-padded)."""
    b, c, h, w = out.shape
    mask = torch.softmax(mask.view(b, 1, 9, k, k, h, w), dim=2)
    patches = F.unfold(F.pad(out, (1, 1, 1, 1), mode="replicate"), [3, 3]).view(b, c, 9, 1, 1, h, w)
    return torch.sum(mask * patches, dim=2).permute(0, 1, 4, 2, 5, 3).reshape(b, c, k * h, k * w)


def unfold(x: torch.Tensor, ps: int = PS) -> torch.Tensor:
    """(B, C, H, W) → each pixel's ps×ps neighbourhood (replicate-padded), (B, C, ps², H, W)."""
    b, c, h, w = x.shape
    pad = (ps - 1) // 2
    return F.unfold(F.pad(x, (pad, pad, pad, pad), mode="replicate"), [ps, ps]).view(b, c, ps * ps, h, w)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (…, 3, 3) of axis·angle vectors (…, 3), through the unit quaternion."""
    angles = torch.norm(axis_angle, p=2, dim=-1, keepdim=True)
    half = angles * 0.5
    small = angles.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(angles), angles)
    sin_half_over = torch.where(small, 0.5 - angles * angles / 48, torch.sin(half) / safe)
    r, i, j, k = torch.unbind(torch.cat([torch.cos(half), axis_angle * sin_half_over], dim=-1), -1)
    two_s = 2.0 / (r * r + i * i + j * j + k * k)
    matrix = torch.stack(
        (
            1 - two_s * (j * j + k * k),
            two_s * (i * j - k * r),
            two_s * (i * k + j * r),
            two_s * (i * j + k * r),
            1 - two_s * (i * i + k * k),
            two_s * (j * k - i * r),
            two_s * (i * k - j * r),
            two_s * (j * k + i * r),
            1 - two_s * (i * i + j * j),
        ),
        -1,
    )
    return matrix.reshape((*axis_angle.shape[:-1], 3, 3))


def pixel_coords(height: int, width: int) -> torch.Tensor:
    """(1, 3, H, W): pixel centres (x + 0.5, y + 0.5, 1)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32) + 0.5, torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij"
    )
    return torch.stack([xs, ys, torch.ones_like(xs)])[None]


def camera(intrins: torch.Tensor, h: int, w: int, full_h: int, full_w: int) -> tuple[torch.Tensor, ...]:
    """fu, cu, fv, cv scaled from the input's grid to an h×w grid, each (B, 1, 1, 1)."""
    sx, sy = w / full_w, h / full_h
    return (
        intrins[:, 0, 0].view(-1, 1, 1, 1) * sx,
        intrins[:, 0, 2].view(-1, 1, 1, 1) * sx,
        intrins[:, 1, 1].view(-1, 1, 1, 1) * sy,
        intrins[:, 1, 2].view(-1, 1, 1, 1) * sy,
    )


def rays(intrins: torch.Tensor, h: int, w: int, full_h: int, full_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (u, v) ray encoding (B, 2, h, w) and the unit viewing rays (B, 3, h, w) of an h×w grid."""
    fu, cu, fv, cv = camera(intrins, h, w, full_h, full_w)
    coords = pixel_coords(h, w).repeat(intrins.shape[0], 1, 1, 1)
    u, v = (coords[:, :1] - cu) / fu, (coords[:, 1:2] - cv) / fv
    ray = torch.cat([u, v, coords[:, 2:]], dim=1)
    return ray[:, :2], F.normalize(ray, dim=1)


class DSINE(nn.Module):
    """ImageNet-normalised RGB (B×3×H×W, sides multiples of 32) and intrinsics (B×3×3, pixels of that
    image) → the normal maps after each refinement, full resolution, unit vectors."""

    def __init__(self, config: DsineConfig = DSINE_B5) -> None:
        super().__init__()
        self.num_iter = 5
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.gru = ConvGRU(hidden_dim=64, input_dim=64 + 2, ks=PS)
        self.prob_head = prediction_head(64 + 2, 64, PS * PS)  # weight of each neighbour
        self.xy_head = prediction_head(64 + 2, 64, PS * PS * 2)  # its rotation axis (in-plane part)
        self.angle_head = prediction_head(64 + 2, 64, PS * PS)  # its rotation angle
        self.up_prob_head = prediction_head(64 + 2, 64, 9 * RATIO * RATIO)  # convex upsampling weights

    def upsample(self, h: torch.Tensor, normal: torch.Tensor, uv_8: torch.Tensor) -> torch.Tensor:
        mask = self.up_prob_head(torch.cat([h, uv_8], dim=1))
        return F.normalize(convex_upsampling(normal, mask, RATIO), dim=1)

    def refine(
        self,
        h: torch.Tensor,
        feat_map: torch.Tensor,
        normal: torch.Tensor,
        intrins: torch.Tensor,
        full_hw: tuple[int, int],
        uv_8: torch.Tensor,
        ray_8: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hh, ww = normal.shape[2:]
        fu, cu, fv, cv = camera(intrins, hh, ww, *full_hw)
        h = self.gru(h, feat_map)
        hu = torch.cat([h, uv_8], dim=1)
        prob = torch.sigmoid(self.prob_head(hu)).unsqueeze(1)  # (B, 1, 25, h, w)
        normals = unfold(normal)  # (B, 3, 25, h, w)
        xs, ys = torch.split(self.xy_head(hu), [PS * PS, PS * PS], dim=1)
        xys = F.normalize(torch.stack([xs, ys], dim=1), dim=1)  # (B, 2, 25, h, w)
        angle = torch.sigmoid(self.angle_head(hu)).unsqueeze(1) * torch.pi
        coords = unfold(pixel_coords(hh, ww))
        du_over_fu, dv_over_fv = xys[:, 0] / fu, xys[:, 1] / fv
        term_u = (coords[:, 0] + xys[:, 0] - cu) / fu
        term_v = (coords[:, 1] + xys[:, 1] - cv) / fv
        nx, ny, nz = normals[:, 0], normals[:, 1], normals[:, 2]
        denom = term_u * nx + term_v * ny + nz
        tiny = denom.abs() < 1e-8
        denom = torch.where(tiny, 1e-8 * torch.sign(denom), denom)
        delta_z = -(du_over_fu * nx + dv_over_fv * ny) / denom
        axes = F.normalize(
            torch.stack([du_over_fu + delta_z * term_u, dv_over_fv + delta_z * term_v, delta_z], dim=1), dim=1
        )
        invalid = (torch.isnan(axes) | torch.isinf(axes)).any(dim=1, keepdim=True)
        axes = torch.where(invalid, torch.zeros_like(axes), axes)
        rotation = axis_angle_to_matrix((axes * angle).permute(0, 2, 3, 4, 1))  # (B, 25, h, w, 3, 3)
        rotated = (rotation @ normals.permute(0, 2, 3, 4, 1).unsqueeze(-1)).squeeze(-1).permute(0, 4, 1, 2, 3)
        rotated = F.normalize(rotated, dim=1)
        rotated = torch.stack([ray_relu(rotated[:, :, i], ray_8) for i in range(PS * PS)], dim=2)
        normal = F.normalize(torch.sum(prob * rotated, dim=2), dim=1)
        return h, normal, self.upsample(h, normal, uv_8)

    def forward(self, img: torch.Tensor, intrins: torch.Tensor, num_iter: int | None = None) -> list[torch.Tensor]:
        """`num_iter` refinements (default: the annotator's attribute, 5)."""
        features = self.encoder(img)
        _, _, full_h, full_w = img.shape
        intrins = intrins.clone()
        intrins[:, 0, 2] += 0.5
        intrins[:, 1, 2] += 0.5
        uv_32, _ = rays(intrins, full_h // 32, full_w // 32, full_h, full_w)
        uv_16, _ = rays(intrins, full_h // 16, full_w // 16, full_h, full_w)
        uv_8, ray_8 = rays(intrins, full_h // 8, full_w // 8, full_h, full_w)
        normal, feat_map, h = self.decoder(features, (uv_32, uv_16, uv_8))
        normal = ray_relu(normal, ray_8)
        feat_map = torch.cat([feat_map, uv_8], dim=1)
        outputs = [self.upsample(h, normal, uv_8)]
        for _ in range(self.num_iter if num_iter is None else num_iter):
            h, normal, up = self.refine(h, feat_map, normal.detach(), intrins, (full_h, full_w), uv_8, ray_8)
            outputs.append(up)
        return outputs

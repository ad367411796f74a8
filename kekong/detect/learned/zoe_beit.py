"""MiDaS 3.1's DPT_BEiT_L_384 as ZoeDepth's annotator builds it: timm's `beit_large_patch16_384`
(24 blocks, 1024 wide, 16 heads, layer scale, a relative position bias per block that MiDaS
resamples to the input's patch grid) and the DPT decoder (readout projection, reassembly at
1/4–1/32, four fusion blocks, the depth head).

Parameter names are the checkpoint's, i.e. timm 0.6's with MiDaS's wrappers
(`pretrained.model.blocks.5.attn.relative_position_bias_table`, `pretrained.act_postprocess1.3.weight`,
`scratch.refinenet4.resConfUnit2.conv1.weight`, …) — including each block's persistent
`relative_position_index` buffer and the unused classifier (`fc_norm`, `head`). `BeitConfig`
scales widths and depth (the tests build a tiny one); `BEIT_L_384` is the released network.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 16


@dataclass(frozen=True)
class BeitConfig:
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    hooks: tuple[int, int, int, int] = (5, 11, 17, 23)  # blocks whose outputs the decoder reassembles
    img_size: int = 384  # the grid the position-bias table was trained for
    reassemble: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    features: int = 256  # the DPT decoder's width
    head_features: int = 32  # the depth head's hidden width (ZoeDepth reads it: N_MIDAS_OUT)
    num_classes: int = 1000  # timm's classifier, in the checkpoint though unused


BEIT_L_384 = BeitConfig()


@lru_cache(maxsize=8)
def _index(window: tuple[int, int]) -> torch.Tensor:
    return relative_position_index(window)


def relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """timm's `gen_relative_position_index`: token pair → row of the bias table (3 extra rows for the
    class token: to it, from it, itself)."""
    distances = (2 * window[0] - 1) * (2 * window[1] - 1) + 3
    area = window[0] * window[1]
    rows, cols = torch.arange(window[0], device="cpu"), torch.arange(window[1], device="cpu")  # a constant
    coords = torch.stack(torch.meshgrid(rows, cols, indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    relative[:, :, 0] += window[0] - 1
    relative[:, :, 1] += window[1] - 1
    relative[:, :, 0] *= 2 * window[1] - 1
    index = torch.zeros((area + 1,) * 2, dtype=relative.dtype, device="cpu")
    index[1:, 1:] = relative.sum(-1)
    index[0, 0:] = distances - 3
    index[0:, 0] = distances - 2
    index[0, 0] = distances - 1
    return index


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, window: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.window_size = window
        self.num_relative_distance = (2 * window[0] - 1) * (2 * window[1] - 1) + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(self.num_relative_distance, num_heads))
        self.register_buffer("relative_position_index", _index(window).clone())  # timm 0.6: persistent
        self.proj = nn.Linear(dim, dim)

    def rel_pos_bias(self, window: tuple[int, int]) -> torch.Tensor:
        """MiDaS's `_get_rel_pos_bias`: the table's grid part resampled (bilinear) to `window`."""
        old_h, old_w = 2 * self.window_size[0] - 1, 2 * self.window_size[1] - 1
        new_h, new_w = 2 * window[0] - 1, 2 * window[1] - 1
        table = self.relative_position_bias_table
        grid = table[: self.num_relative_distance - 3].reshape(1, old_w, old_h, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(new_h, new_w), mode="bilinear")
        grid = grid.permute(0, 2, 3, 1).reshape(new_h * new_w, -1)
        table = torch.cat([grid, table[self.num_relative_distance - 3 :]])
        area = window[0] * window[1] + 1
        return table[_index(window).to(table.device).view(-1)].view(area, area, -1).permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
        batch, tokens, _ = x.shape
        bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1) + self.rel_pos_bias(window)
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, tokens, -1))


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * 4)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim * 4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, window: tuple[int, int]) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)
        self.gamma_1 = nn.Parameter(torch.full((dim,), 1e-5))  # layer scale (init_values 1e-5)
        self.gamma_2 = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
        x = x + self.gamma_1 * self.attn(self.norm1(x), window)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Beit(nn.Module):
    """The transformer: the hooked blocks' outputs, (B, 1 + h·w, dim) each."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        grid = (config.img_size // PATCH,) * 2
        self.patch_embed = PatchEmbed(config.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.blocks = nn.ModuleList(Block(config.embed_dim, config.num_heads, grid) for _ in range(config.depth))
        self.fc_norm = nn.LayerNorm(config.embed_dim, eps=1e-6)  # the classifier: loaded, never run
        self.head = nn.Linear(config.embed_dim, config.num_classes)
        self.hooks = config.hooks

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        window = (x.shape[2] // PATCH, x.shape[3] // PATCH)
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        taken = []
        for index, block in enumerate(self.blocks[: max(self.hooks) + 1]):
            x = block(x, window)
            if index in self.hooks:
                taken.append(x)
        return taken


class ProjectReadout(nn.Module):
    """Each patch token concatenated with the class token, projected back (Linear + GELU)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        readout = x[:, 0].unsqueeze(1).expand_as(x[:, 1:])
        return self.project(torch.cat((x[:, 1:], readout), -1))


class Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def _reassemble(dim: int, out: int, resample: nn.Module | None) -> nn.Sequential:
    """act_postprocessN: readout, transpose, (unflatten: done in forward, to the input's grid), 1×1 conv,
    resample (×4, ×2 transposed conv; none; ½ strided conv)."""
    layers = [ProjectReadout(dim), Transpose(), nn.Identity(), nn.Conv2d(dim, out, 1)]
    return nn.Sequential(*layers, *([resample] if resample is not None else []))


class Backbone(nn.Module):
    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        dim, (f1, f2, f3, f4) = config.embed_dim, config.reassemble
        self.model = Beit(config)
        self.act_postprocess1 = _reassemble(dim, f1, nn.ConvTranspose2d(f1, f1, 4, stride=4))
        self.act_postprocess2 = _reassemble(dim, f2, nn.ConvTranspose2d(f2, f2, 2, stride=2))
        self.act_postprocess3 = _reassemble(dim, f3, None)
        self.act_postprocess4 = _reassemble(dim, f4, nn.Conv2d(f4, f4, 3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        grid = (x.shape[2] // PATCH, x.shape[3] // PATCH)
        layers = []
        for tokens, post in zip(
            self.model(x),
            (self.act_postprocess1, self.act_postprocess2, self.act_postprocess3, self.act_postprocess4),
            strict=True,
        ):
            mapped = post[0:2](tokens)
            mapped = mapped.unflatten(2, grid)
            layers.append(post[3:](mapped))
        return layers


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.activation = nn.ReLU(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.activation(self.conv1(self.activation(x)))) + x


class FusionBlock(nn.Module):
    """FeatureFusionBlock_custom: (+ residual unit of the skip), residual unit, bilinear resize
    (align_corners) to the next size or ×2, 1×1 conv."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, size: torch.Size | None = None
    ) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Interpolate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class Scratch(nn.Module):
    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        f = config.features
        for index, channels in enumerate(config.reassemble, 1):
            setattr(self, f"layer{index}_rn", nn.Conv2d(channels, f, 3, padding=1, bias=False))
        for index in range(1, 5):
            setattr(self, f"refinenet{index}", FusionBlock(f))
        self.output_conv = nn.Sequential(
            nn.Conv2d(f, f // 2, 3, padding=1),
            Interpolate(),
            nn.Conv2d(f // 2, config.head_features, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(config.head_features, 1, 1),
            nn.ReLU(True),
            nn.Identity(),
        )


class DPTBeit(nn.Module):
    """Image (B×3×H×W, sides multiples of 32, normalised to [−1, 1]) → relative inverse depth (B×H×W)
    and the features ZoeDepth reads: the head's 32-channel activation, layer4_rn and the four fusions."""

    def __init__(self, config: BeitConfig = BEIT_L_384) -> None:
        super().__init__()
        self.pretrained = Backbone(config)
        self.scratch = Scratch(config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layer1, layer2, layer3, layer4 = self.pretrained(x)
        s = self.scratch
        l1, l2, l3, l4 = s.layer1_rn(layer1), s.layer2_rn(layer2), s.layer3_rn(layer3), s.layer4_rn(layer4)
        path4 = s.refinenet4(l4, size=l3.shape[2:])
        path3 = s.refinenet3(path4, l3, size=l2.shape[2:])
        path2 = s.refinenet2(path3, l2, size=l1.shape[2:])
        path1 = s.refinenet1(path2, l1)
        head = s.output_conv[:4](path1)  # ZoeDepth's "out_conv" hook: the ReLU after the 32-channel conv
        depth = s.output_conv[4:](head).squeeze(1)
        return depth, [head, l4, path4, path3, path2, path1]

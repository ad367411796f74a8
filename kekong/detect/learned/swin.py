"""The Swin Transformer backbone as OneFormer (and Mask2Former) use it through detectron2 (`D2SwinTransformer`):
shifted-window attention with a relative position bias, patch merging between stages, inputs of any size
(zero-padded to whole patches and windows), and a LayerNorm (`norm0` … `norm3`) on each stage's output —
res2 … res5 at strides 4 … 32. Parameter names follow the checkpoints' (`backbone.…`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def windows_of(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, C) → (B·windows, size², C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // size, size, w // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size * size, c)


def merge_windows(windows: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    b = windows.shape[0] // ((h // size) * (w // size))
    x = windows.view(b, h // size, w // size, size, size, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", relative[..., 0] * (2 * window - 1) + relative[..., 1])
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        bias = bias.permute(2, 0, 1)[None]
        if mask is not None:  # (windows, n, n): −100 between positions the shift brought together
            bias = (bias[None] + mask[:, None][None]).expand(b // mask.shape[0], -1, -1, -1, -1).reshape(b, -1, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, mask: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        s = self.window
        y = F.pad(self.norm1(x).view(b, h, w, c), (0, 0, 0, (s - w % s) % s, 0, (s - h % s) % s))
        hp, wp = y.shape[1:3]
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = merge_windows(self.attn(windows_of(y, s), mask if self.shift else None), s, hp, wp)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y[:, :h, :w].reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


def shift_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """Swin's attention mask for shifted windows over an h×w map padded to whole windows: (windows, n, n)."""
    hp, wp = -(-h // window) * window, -(-w // window) * window
    regions = torch.zeros(1, hp, wp, 1)
    spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, (ys, xs) in enumerate((ys, xs) for ys in spans for xs in spans):
        regions[:, ys, xs] = i
    ids = windows_of(regions, window)[..., 0]
    return (ids[:, None, :] - ids[:, :, None]).ne(0).float() * -100.0


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: int, downsample: bool) -> None:
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2)
                                    for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = shift_mask(h, w, self.window, self.window // 2)
        for block in self.blocks:
            x = block(x, h, w, mask)
        return x, None if self.downsample is None else self.downsample(x, h, w)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int = 4) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        x = self.proj(F.pad(x, (0, (p - x.shape[3] % p) % p, 0, (p - x.shape[2] % p) % p)))
        return self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(x.shape)


class SwinTransformer(nn.Module):
    """Swin-L (embed 192, depths 2/2/18/2, heads 6/12/24/48, window 12) by default, as both OneFormer files."""

    def __init__(self, dim: int = 192, depths: tuple[int, ...] = (2, 2, 18, 2),
                 heads: tuple[int, ...] = (6, 12, 24, 48), window: int = 12) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(dim)
        self.layers = nn.ModuleList(SwinStage(dim * 2**i, depth, heads[i], window, i < len(depths) - 1)
                                    for i, depth in enumerate(depths))
        self.widths = [dim * 2**i for i in range(len(depths))]
        for i, width in enumerate(self.widths):
            self.add_module(f"norm{i}", nn.LayerNorm(width))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.patch_embed(x)
        h, w = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)
        out = {}
        for i, layer in enumerate(self.layers):
            y, down = layer(x, h, w)
            y = getattr(self, f"norm{i}")(y)
            out[f"res{i + 2}"] = y.view(-1, h, w, self.widths[i]).permute(0, 3, 1, 2).contiguous()
            if down is not None:
                x, h, w = down, (h + 1) // 2, (w + 1) // 2
        return out

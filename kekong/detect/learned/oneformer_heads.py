"""OneFormer's segmentation head as its checkpoints name it (`sem_seg_head.pixel_decoder.…`,
`sem_seg_head.predictor.…`): Mask2Former's multi-scale deformable-attention pixel decoder (six
MSDeformAttn encoder layers over res3–res5, an FPN step to res2, 1×1 mask features) and OneFormer's
task-conditioned transformer decoder (a two-layer DETR decoder turns the task token into the initial
queries; then masked cross-attention over the three scales, self-attention and an FFN per layer, class
and mask predictions after the last). Multi-scale deformable attention runs by `grid_sample` (the
reference's pure-PyTorch path, which is what it runs on CPU)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kekong.detect.learned.sam_model import MLP


def sine_position(x: torch.Tensor, features: int) -> torch.Tensor:
    """DETR's normalised sine encoding of every position of x (B, C, H, W): (B, 2·features, H, W)."""
    b, _, h, w = x.shape
    y_embed = torch.arange(1, h + 1, dtype=torch.float32)[None, :, None].expand(b, h, w)
    x_embed = torch.arange(1, w + 1, dtype=torch.float32)[None, None, :].expand(b, h, w)
    y_embed = y_embed / (h + 1e-6) * 2 * math.pi
    x_embed = x_embed / (w + 1e-6) * 2 * math.pi
    dim_t = torch.arange(features, dtype=torch.float32)
    dim_t = 10000 ** (2 * (dim_t // 2) / features)
    pos_x, pos_y = x_embed[..., None] / dim_t, y_embed[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class MSDeformAttn(nn.Module):
    def __init__(self, dim: int = 256, levels: int = 3, heads: int = 8, points: int = 4) -> None:
        super().__init__()
        self.levels, self.heads, self.points = levels, heads, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, reference: torch.Tensor, value: torch.Tensor,
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        n, lq, c = query.shape
        m, lv, p = self.heads, self.levels, self.points
        value = self.value_proj(value).view(n, -1, m, c // m)
        offsets = self.sampling_offsets(query).view(n, lq, m, lv, p, 2)
        weights = self.attention_weights(query).view(n, lq, m, lv * p).softmax(-1).view(n, lq, m, lv, p)
        normaliser = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32)
        locations = reference[:, :, None, :, None, :] + offsets / normaliser[None, None, None, :, None, :]
        grids = 2 * locations - 1
        sampled = []
        for level, (part, (h, w)) in enumerate(zip(value.split([h * w for h, w in shapes], dim=1), shapes,
                                                  strict=True)):
            v = part.flatten(2).transpose(1, 2).reshape(n * m, c // m, h, w)
            grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
            sampled.append(F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
        weights = weights.transpose(1, 2).reshape(n * m, 1, lq, lv * p)
        out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1).view(n, c, lq)
        return self.output_proj(out.transpose(1, 2))


class DeformableEncoderLayer(nn.Module):
    def __init__(self, dim: int = 256, ffn: int = 1024, levels: int = 3, heads: int = 8) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(dim, levels, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1, self.linear2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor,
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        src = self.norm1(src + self.self_attn(src + pos, reference, src, shapes))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DeformableEncoder(nn.Module):
    def __init__(self, dim: int, layers: int, levels: int, heads: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DeformableEncoderLayer(dim, 1024, levels, heads) for _ in range(layers))


class DeformableTransformer(nn.Module):
    def __init__(self, dim: int = 256, layers: int = 6, levels: int = 3, heads: int = 8) -> None:
        super().__init__()
        self.encoder = DeformableEncoder(dim, layers, levels, heads)
        self.level_embed = nn.Parameter(torch.zeros(levels, dim))

    def forward(self, srcs: list[torch.Tensor], pos: list[torch.Tensor]) -> torch.Tensor:
        shapes = [tuple(s.shape[2:]) for s in srcs]
        flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        position = torch.cat([p.flatten(2).transpose(1, 2) + self.level_embed[i] for i, p in enumerate(pos)], 1)
        refs = []
        for h, w in shapes:  # every position's centre, normalised (no padding: valid ratios 1)
            ys, xs = torch.meshgrid(torch.linspace(0.5, h - 0.5, h) / h, torch.linspace(0.5, w - 0.5, w) / w,
                                    indexing="ij")
            refs.append(torch.stack((xs.reshape(-1), ys.reshape(-1)), -1))
        reference = torch.cat(refs)[None, :, None].expand(flat.shape[0], -1, len(shapes), -1)
        for layer in self.encoder.layers:
            flat = layer(flat, position, reference, shapes)  # type: ignore[arg-type]
        return flat


class ConvNorm(nn.Module):
    """detectron2's Conv2d with a GroupNorm `norm` (no bias) and an optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, relu: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel))
        self.norm = nn.GroupNorm(32, cout)
        self.relu, self.padding = relu, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(F.conv2d(x, self.weight, padding=self.padding))
        return F.relu(x) if self.relu else x


class PixelDecoder(nn.Module):
    """MSDeformAttnPixelDecoder: (mask features at 1/4, the three multi-scale maps 1/32, 1/16, 1/8)."""

    def __init__(self, in_channels: tuple[int, ...] = (192, 384, 768, 1536), dim: int = 256,
                 mask_dim: int = 256, layers: int = 6, heads: int = 8) -> None:
        super().__init__()
        self.dim = dim
        self.input_proj = nn.ModuleList(nn.Sequential(nn.Conv2d(c, dim, 1), nn.GroupNorm(32, dim))
                                        for c in in_channels[:0:-1])  # res5, res4, res3
        self.transformer = DeformableTransformer(dim, layers, 3, heads)
        self.mask_features = nn.Conv2d(dim, mask_dim, 1)
        self.adapter_1 = ConvNorm(in_channels[0], dim, 1, relu=False)
        self.layer_1 = ConvNorm(dim, dim, 3, relu=True)

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        names = ("res5", "res4", "res3")
        srcs = [proj(features[name]) for proj, name in zip(self.input_proj, names, strict=True)]
        pos = [sine_position(features[name], self.dim // 2) for name in names]
        memory = self.transformer(srcs, pos)
        b = memory.shape[0]
        sizes = [s.shape[2] * s.shape[3] for s in srcs]
        outs = [part.transpose(1, 2).reshape(b, -1, *s.shape[2:]) for part, s in zip(memory.split(sizes, 1), srcs,
                                                                                        strict=True)]
        lateral = self.adapter_1(features["res2"])
        fpn = self.layer_1(lateral + F.interpolate(outs[-1], size=lateral.shape[-2:], mode="bilinear",
                                                   align_corners=False))
        return self.mask_features(fpn), outs[:3]


class DetrDecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads)
        self.multihead_attn = nn.MultiheadAttention(dim, heads)
        self.linear1, self.linear2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, q, tgt, need_weights=False)[0])
        tgt = self.norm2(tgt + self.multihead_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0])
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class DetrDecoder(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DetrDecoderLayer(dim, heads, ffn) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)


class ClassTransformer(nn.Module):
    """DETR's Transformer with no encoder layer: the task token, repeated, decodes against the mask features."""

    def __init__(self, dim: int, heads: int, ffn: int, layers: int) -> None:
        super().__init__()
        self.decoder = DetrDecoder(dim, heads, ffn, layers)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, queries: torch.Tensor,
                task: torch.Tensor) -> torch.Tensor:
        memory, pos = src.flatten(2).permute(2, 0, 1), pos.flatten(2).permute(2, 0, 1)
        query_pos = queries[:, None].expand(-1, src.shape[0], -1)
        tgt = task.expand(queries.shape[0], -1, -1)
        for layer in self.decoder.layers:
            tgt = layer(tgt, memory, pos, query_pos)
        return self.decoder.norm(tgt)  # (Q − 1, B, C)


class CrossAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> torch.Tensor:
        out = self.multihead_attn(tgt + query_pos, memory + pos, memory, attn_mask=mask, need_weights=False)[0]
        return self.norm(tgt + out)


class SelfAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, q, tgt, need_weights=False)[0])


class FFNLayer(nn.Module):
    def __init__(self, dim: int, ffn: int) -> None:
        super().__init__()
        self.linear1, self.linear2, self.norm = nn.Linear(dim, ffn), nn.Linear(ffn, dim), nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor) -> torch.Tensor:
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class TransformerDecoder(nn.Module):
    """ContrastiveMultiScaleMaskedTransformerDecoder at inference (`predictor.…`)."""

    def __init__(self, classes: int = 150, queries: int = 250, dim: int = 256, heads: int = 8, ffn: int = 2048,
                 layers: int = 9, class_layers: int = 2, mask_dim: int = 256) -> None:
        super().__init__()
        self.heads, self.dim = heads, dim
        self.class_transformer = ClassTransformer(dim, heads, ffn, class_layers)
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer(dim, heads) for _ in range(layers))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer(dim, heads)
                                                                for _ in range(layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(dim, ffn) for _ in range(layers))
        self.decoder_norm = nn.LayerNorm(dim)
        self.query_embed = nn.Embedding(queries, dim)
        self.level_embed = nn.Embedding(3, dim)
        self.class_input_proj = nn.Conv2d(mask_dim, dim, 1)
        self.class_embed = nn.Linear(dim, classes + 1)
        self.mask_embed = MLP(dim, dim, mask_dim, 3)

    def heads_of(self, output: torch.Tensor, mask_features: torch.Tensor,
                 size: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        decoded = self.decoder_norm(output).transpose(0, 1)
        logits = self.class_embed(decoded)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(decoded), mask_features)
        attn = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        attn = (attn.sigmoid().flatten(2)[:, None].expand(-1, self.heads, -1, -1).flatten(0, 1) < 0.5)
        return logits, masks, attn

    def forward(self, features: list[torch.Tensor], mask_features: torch.Tensor,
                task: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (B, Q, classes + 1) and mask logits (B, Q, H/4, W/4) of the last layer."""
        sizes = [f.shape[-2:] for f in features]
        pos = [sine_position(f, self.dim // 2).flatten(2).permute(2, 0, 1) for f in features]
        src = [(f.flatten(2) + self.level_embed.weight[i][None, :, None]).permute(2, 0, 1)
               for i, f in enumerate(features)]
        b = src[0].shape[1]
        query_pos = self.query_embed.weight[:, None].expand(-1, b, -1)
        task = self.decoder_norm(task[None])  # (1, B, C)
        # as OneFormer calls it: the mask features' sine encoding is the memory, their projection its position
        initial = self.class_transformer(sine_position(mask_features, self.dim // 2),
                                         self.class_input_proj(mask_features), self.query_embed.weight[:-1], task)
        output = torch.cat([initial, task], dim=0)
        logits, masks, attn = self.heads_of(output, mask_features, sizes[0])
        for i, (cross, self_attn, ffn) in enumerate(zip(self.transformer_cross_attention_layers,
                                                        self.transformer_self_attention_layers,
                                                        self.transformer_ffn_layers, strict=True)):
            level = i % 3
            attn[attn.all(-1)] = False  # a query that would see nothing sees everything
            output = ffn(self_attn(cross(output, src[level], attn, pos[level], query_pos), query_pos))
            logits, masks, attn = self.heads_of(output, mask_features, sizes[(i + 1) % 3])
        return logits, masks

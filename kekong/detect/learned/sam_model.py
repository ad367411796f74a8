"""MobileSAM's network (Zhang et al., "Faster Segment Anything"), as segment_anything's `vit_t` builds it
for `mobile_sam.pt` (dhkim2810/MobileSAM): a TinyViT-5M image encoder (MBConv stage, then windowed
attention stages with TinyViT's per-offset attention biases) and a neck to 256 channels at 1/16, SAM's
prompt encoder (random-Fourier positional encoding of points) and SAM's mask decoder (a two-way
transformer between prompt tokens and image positions, 3 + 1 mask tokens through hypernetwork MLPs, an
IoU head). Module and parameter names follow the checkpoint's (`image_encoder.…`, `prompt_encoder.…`,
`mask_decoder.…`); TinyViT's ImageNet head (`norm_head`, `head`) is in the file and built, never run.
The widths are arguments so the tests can build a small network of the same architecture.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SIZE = 1024  # the encoder's input: the image's long side, zero-padded square


class ConvBN(nn.Sequential):
    """TinyViT's Conv2d_BN: a bias-free conv `c` and its BatchNorm `bn`."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, pad: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(3, dim // 2, 3, 2, 1), nn.GELU(), ConvBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    def __init__(self, dim: int, expand: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(self.conv3(h) + x)


class PatchMerging(nn.Module):
    """1×1, depth-wise 3×3 (stride 2; 1 into the last stage, which TinyViT-SAM keeps at 1/16), 1×1."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) → (B, C', H', W')
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


class WindowAttention(nn.Module):
    """TinyViT's attention in a window: a learned bias per head and per |Δy|, |Δx| offset."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.key_dim = heads, dim // heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window), range(window)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = [offsets.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(offsets)) for a in points for b in points]
        self.attention_biases = nn.Parameter(torch.zeros(heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(idxs).view(len(points), len(points)),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, self.heads, -1).split([self.key_dim] * 3, dim=3)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention (zero-padded to whole windows), a depth-wise 3×3 conv, an MLP."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window = window
        self.attn = WindowAttention(dim, heads, window)
        self.local_conv = ConvBN(dim, dim, 3, 1, 1, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        b, c, h, w = x.shape
        s = self.window
        tokens = x.permute(0, 2, 3, 1)
        pad_b, pad_r = (s - h % s) % s, (s - w % s) % s
        padded = F.pad(tokens, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        windows = padded.view(b, ph // s, s, pw // s, s, c).transpose(2, 3).reshape(-1, s * s, c)
        attended = self.attn(windows).view(b, ph // s, pw // s, s, s, c).transpose(2, 3).reshape(b, ph, pw, c)
        tokens = tokens + attended[:, :h, :w]
        x = self.local_conv(tokens.permute(0, 3, 1, 2))
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.mlp(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class Stage(nn.Module):
    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class LayerNorm2d(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(channels)), nn.Parameter(torch.zeros(channels)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * ((x - u) / torch.sqrt(s + self.eps)) + self.bias[:, None, None]


class TinyViT(nn.Module):
    """TinyViT-5M as MobileSAM configures it: 1024² in, a 256-channel embedding at 64² out."""

    def __init__(self, dims: tuple[int, ...] = (64, 128, 160, 320), depths: tuple[int, ...] = (2, 2, 6, 2),
                 heads: tuple[int, ...] = (2, 4, 5, 10), windows: tuple[int, ...] = (7, 7, 14, 7),
                 out_channels: int = 256, classes: int = 1000) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(dims[0])
        layers: list[nn.Module] = []
        for i, dim in enumerate(dims):
            last = i == len(dims) - 1
            down = None if last else PatchMerging(dim, dims[i + 1], stride=1 if i == len(dims) - 2 else 2)
            blocks: list[nn.Module] = ([MBConv(dim) for _ in range(depths[i])] if i == 0 else
                                       [TinyViTBlock(dim, heads[i], windows[i]) for _ in range(depths[i])])
            layers.append(Stage(blocks, down))
        self.layers = nn.ModuleList(layers)
        self.norm_head = nn.LayerNorm(dims[-1])  # TinyViT's classifier: in the checkpoint, unused by SAM
        self.head = nn.Linear(dims[-1], classes)
        self.neck = nn.Sequential(nn.Conv2d(dims[-1], out_channels, 1, bias=False), LayerNorm2d(out_channels),
                                  nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                                  LayerNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of (x, y) in [0, 1]: sin and cos of 2π·(2p − 1)·G."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, features))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        coords = 2 * math.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """(C, H, W) encoding of every cell centre of an h×w grid."""
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
        coords = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.encode(coords).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """SAM's prompt encoder (points, boxes and masks; the automatic generator sends one point each)."""

    def __init__(self, dim: int = 256, embedding_size: int = 64, mask_channels: int = 16) -> None:
        super().__init__()
        self.embedding_size = embedding_size
        self.pe_layer = PositionEmbeddingRandom(dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))  # neg, pos, 2 box corners
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_channels // 4, 2, stride=2), LayerNorm2d(mask_channels // 4), nn.GELU(),
            nn.Conv2d(mask_channels // 4, mask_channels, 2, stride=2), LayerNorm2d(mask_channels), nn.GELU(),
            nn.Conv2d(mask_channels, dim, 1))
        self.no_mask_embed = nn.Embedding(1, dim)

    def dense_pe(self) -> torch.Tensor:
        return self.pe_layer.grid(self.embedding_size, self.embedding_size)[None]

    def points(self, coords: torch.Tensor, labels: torch.Tensor, image_size: int) -> torch.Tensor:
        """Sparse embeddings of points (B, N, 2) in input-frame pixels, labels 1/0, plus the padding point."""
        coords = torch.cat([coords + 0.5, torch.zeros(coords.shape[0], 1, 2)], dim=1) / image_size
        labels = torch.cat([labels, -torch.ones(labels.shape[0], 1, dtype=labels.dtype)], dim=1)
        embedding = self.pe_layer.encode(coords)
        embedding[labels == -1] = self.not_a_point_embed.weight[0]
        embedding[labels == 0] += self.point_embeddings[0].weight[0]
        embedding[labels == 1] += self.point_embeddings[1].weight[0]
        return embedding

    def no_mask(self, batch: int) -> torch.Tensor:
        size = self.embedding_size
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, size, size)


class Attention(nn.Module):
    """SAM's attention with an optional downscaled internal width."""

    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        def split(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(q)), split(self.k_proj(k)), split(self.v_proj(v)))
        return self.out_proj(out.transpose(1, 2).flatten(2))


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, skip_first_pe: bool) -> None:
        super().__init__()
        self.skip_first_pe = skip_first_pe
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, 2)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, keys + key_pe, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys + key_pe, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, dim: int = 256, depth: int = 2, heads: int = 8, mlp_dim: int = 2048) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, i == 0) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor,
                points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys, key_pe = image.flatten(2).transpose(1, 2), image_pe.flatten(2).transpose(1, 2)
        queries = points
        for layer in self.layers:
            queries, keys = layer(queries, keys, points, key_pe)
        queries = queries + self.final_attn_token_to_image(queries + points, keys + key_pe, keys)
        return self.norm_final_attn(queries), keys


class MLP(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int, layers: int) -> None:
        super().__init__()
        sizes = [cin, *[hidden] * (layers - 1), cout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class MaskDecoder(nn.Module):
    def __init__(self, dim: int = 256, mlp_dim: int = 2048, iou_hidden: int = 256, masks: int = 3) -> None:
        super().__init__()
        self.tokens = masks + 1
        self.transformer = TwoWayTransformer(dim, mlp_dim=mlp_dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, stride=2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, stride=2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(dim, dim, dim // 8, 3) for _ in range(self.tokens))
        self.iou_prediction_head = MLP(dim, iou_hidden, self.tokens, 3)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The three multimask outputs' low-resolution logits (B, 3, 4h, 4w) and predicted IoUs (B, 3)."""
        batch = sparse.shape[0]
        output = torch.cat([self.iou_token.weight, self.mask_tokens.weight])[None].expand(batch, -1, -1)
        tokens = torch.cat([output, sparse], dim=1)
        src = image.expand(batch, -1, -1, -1) + dense
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe.expand(batch, -1, -1, -1), tokens)
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        masks = (hyper @ upscaled.flatten(2)).view(b, -1, *upscaled.shape[2:])
        iou = self.iou_prediction_head(hs[:, 0])
        return masks[:, 1:], iou[:, 1:]


class MobileSam(nn.Module):
    """segment_anything's Sam with the TinyViT encoder, as `mobile_sam.pt` names it."""

    def __init__(self, dims: tuple[int, ...] = (64, 128, 160, 320), depths: tuple[int, ...] = (2, 2, 6, 2),
                 heads: tuple[int, ...] = (2, 4, 5, 10), windows: tuple[int, ...] = (7, 7, 14, 7),
                 prompt_dim: int = 256, mlp_dim: int = 2048, mask_channels: int = 16, iou_hidden: int = 256,
                 classes: int = 1000) -> None:
        super().__init__()
        self.image_encoder = TinyViT(dims, depths, heads, windows, prompt_dim, classes)
        self.prompt_encoder = PromptEncoder(prompt_dim, IMAGE_SIZE // 16, mask_channels)
        self.mask_decoder = MaskDecoder(prompt_dim, mlp_dim, iou_hidden)


def shape_of(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """The MobileSam arguments a state_dict's tensors describe (TinyViT's widths, depths, heads and windows,
    the prompt width …), so the network built fits the file, MobileSAM's or the tests' small one."""
    prefix = "image_encoder.layers"
    depths = tuple(len({k.split(".")[4] for k in state if k.startswith(f"{prefix}.{i}.blocks.")}) for i in range(4))
    dims = (int(state[f"{prefix}.0.blocks.0.conv1.c.weight"].shape[1]),
            *(int(state[f"{prefix}.{i}.blocks.0.attn.norm.weight"].shape[0]) for i in (1, 2, 3)))
    biases = [state[f"{prefix}.{i}.blocks.0.attn.attention_biases"] for i in (1, 2, 3)]
    heads = (1, *(int(b.shape[0]) for b in biases))
    windows = (7, *(math.isqrt(int(b.shape[1])) for b in biases))  # one bias per offset: window² of them
    return {"dims": dims, "depths": depths, "heads": heads, "windows": windows,
            "prompt_dim": int(state["prompt_encoder.no_mask_embed.weight"].shape[1]),
            "mlp_dim": int(state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
            "mask_channels": int(state["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
            "iou_hidden": int(state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
            "classes": int(state["image_encoder.head.weight"].shape[0])}

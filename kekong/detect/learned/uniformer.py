"""ADE20K semantic segmentation with UniFormer-S + UperNet (`segmentation`, label seg_ufade20k), as
sd-webui-controlnet's annotator runs `upernet_global_small.pth` (lllyasviel/ControlNet,
annotator/ckpts/): mmseg's EncoderDecoder with the UniFormer backbone (Li et al., "UniFormer:
Unifying Convolution and Self-attention", global attention in stage 3) and the UperNet decode head
(a pooling pyramid on the deepest features, an FPN over all four), 150 classes.

Module and parameter names follow the checkpoint's (`backbone.…`, `decode_head.…`); the checkpoint's
`auxiliary_head` (an FCN head used only in training) is not built and its tensors are skipped, as the
extension's test-time forward never runs it. Pre- and post-processing are the extension's: the image
rescaled to fit 2048×512 keeping its ratio, normalised with mmseg's ImageNet mean/std after the
pipeline's BGR→RGB swap (the extension hands mmseg an RGB array, so the network sees it channel-
reversed — kept, since the released weights are used that way), logits resized back to the image,
arg-max, and each class painted in ADE20K's palette.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kekong.detect.learned import WEIGHTS_PARAM
from kekong.detect.learned.strict import load_strictly
from kekong.detect.registry import detector
from kekong.errors import KekongError
from kekong.models.weights import find_annotator, load_state_dict

REPO, PATH = "lllyasviel/ControlNet", "annotator/ckpts/upernet_global_small.pth"


class PatchEmbed(nn.Module):
    """Strided conv to the next stage's width, then LayerNorm over channels."""

    def __init__(self, patch: int, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class ConvMlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1)


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)


class ConvBlock(nn.Module):
    """UniFormer's local block (CBlock): depth-wise 5×5 "attention" between 1×1 convs, BatchNorm."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # scale head_dim ** -0.5, as UniFormer's
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class AttentionBlock(nn.Module):
    """UniFormer's global block (SABlock): self-attention over every position of the stage."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(self.norm1(tokens))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class UniFormer(nn.Module):
    """Four stages at 1/4 … 1/32: two convolutional, two global self-attention; a LayerNorm'd output each.
    Heads: width // 64 (UniFormer's head_dim 64), at least one."""

    def __init__(self, dims: tuple[int, ...] = (64, 128, 320, 512), depths: tuple[int, ...] = (3, 4, 8, 3)) -> None:
        super().__init__()
        ins = (3, *dims[:3])
        for stage, (patch, cin, dim, depth) in enumerate(zip((4, 2, 2, 2), ins, dims, depths, strict=True), 1):
            self.add_module(f"patch_embed{stage}", PatchEmbed(patch, cin, dim))
            blocks = [ConvBlock(dim) if stage <= 2 else AttentionBlock(dim, max(1, dim // 64)) for _ in range(depth)]
            self.add_module(f"blocks{stage}", nn.ModuleList(blocks))
            self.add_module(f"norm{stage}", nn.LayerNorm(dim, eps=1e-6))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage in range(1, 5):
            x = getattr(self, f"patch_embed{stage}")(x)
            for block in getattr(self, f"blocks{stage}"):
                x = block(x)
            outs.append(getattr(self, f"norm{stage}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous())
        return outs


class ConvModule(nn.Module):
    """mmcv's ConvModule with BatchNorm: conv (no bias), `bn`, ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UPerHead(nn.Module):
    """UperNet: a pyramid pooling module (scales 1, 2, 3, 6) on the deepest map, lateral 1×1 + 3×3
    FPN convs on the others, all four concatenated at 1/4, fused and classified."""

    def __init__(self, in_channels: tuple[int, ...] = (64, 128, 320, 512), channels: int = 512,
                 classes: int = 150, pool_scales: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvModule(in_channels[-1], channels, 1))
            for scale in pool_scales)
        self.bottleneck = ConvModule(in_channels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvModule(channels, channels, 3) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvModule(len(in_channels) * channels, channels, 3)
        self.conv_seg = nn.Conv2d(channels, classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        top = features[-1]
        pooled = [top, *(_resize(module(top), top.shape[2:]) for module in self.psp_modules)]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, features, strict=False)]
        laterals.append(self.bottleneck(torch.cat(pooled, 1)))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(lateral) for conv, lateral in zip(self.fpn_convs, laterals, strict=False)] + [laterals[-1]]
        outs = [outs[0], *(_resize(out, outs[0].shape[2:]) for out in outs[1:])]
        return self.conv_seg(self.fpn_bottleneck(torch.cat(outs, 1)))


class UperNetUniFormer(nn.Module):
    """mmseg's EncoderDecoder as the checkpoint names it: `backbone` and `decode_head`. The defaults are
    upernet_global_small's (UniFormer-S, UperNet 512 channels, ADE20K's 150 classes)."""

    def __init__(self, dims: tuple[int, ...] = (64, 128, 320, 512), depths: tuple[int, ...] = (3, 4, 8, 3),
                 channels: int = 512, classes: int = 150) -> None:
        super().__init__()
        self.backbone = UniFormer(dims, depths)
        self.decode_head = UPerHead(dims, channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits at the input's size (mmseg's encode_decode)."""
        return _resize(self.decode_head(self.backbone(x)), x.shape[2:])


def shape_of(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """The UperNetUniFormer arguments a state_dict's tensors describe (widths, depths, head width, classes),
    so UniFormer-S and the other UniFormer sizes (and the tests' tiny one) build the network they fit."""
    dims = tuple(int(state[f"backbone.patch_embed{s}.proj.weight"].shape[0]) for s in range(1, 5))
    depths = tuple(len({k.split(".")[2] for k in state if k.startswith(f"backbone.blocks{s}.")}) for s in range(1, 5))
    classes, channels = state["decode_head.conv_seg.weight"].shape[:2]
    return {"dims": dims, "depths": depths, "channels": int(channels), "classes": int(classes)}


@lru_cache(maxsize=2)
def load_uniformer(path: str) -> UperNetUniFormer:
    """The network with `path` loaded strictly (the training-only auxiliary head's tensors skipped)."""
    state = load_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith("auxiliary_head.")}
    try:
        network = UperNetUniFormer(**shape_of(state))  # type: ignore[arg-type]
    except KeyError as exc:
        raise KekongError(f"{path}: does not fit the UniFormer + UperNet segmentation network (no tensor {exc})") \
            from None
    return load_strictly(network, state, path, "UniFormer + UperNet segmentation").eval()


MEAN, STD = np.array([123.675, 116.28, 103.53], np.float32), np.array([58.395, 57.12, 57.375], np.float32)


def segment(network: UperNetUniFormer, image: np.ndarray) -> np.ndarray:
    """ADE20K class per pixel (int64 HxW) by the extension's test pipeline (mmseg, mode 'whole')."""
    h, w = image.shape[:2]
    scale = min(2048 / max(h, w), 512 / min(h, w))  # Resize(img_scale=(2048, 512), keep_ratio=True)
    size = (int(w * scale + 0.5), int(h * scale + 0.5))
    feed = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR) if size != (w, h) else image
    feed = (np.ascontiguousarray(feed[:, :, ::-1]).astype(np.float32) - MEAN) / STD  # to_rgb on an RGB array
    with torch.inference_mode():
        logits = network(torch.from_numpy(feed).permute(2, 0, 1)[None])
        logits = _resize(logits, (h, w))  # rescale=True: back to the image mmseg was given
    return logits[0].argmax(0).numpy()


def paint(classes: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Each class in its palette colour (uint8 HxWx3 RGB)."""
    return palette[classes].astype(np.uint8)


# mmseg's ADE20K palette (ADE20KDataset.PALETTE), class index → RGB, as the extension paints it
ADE20K_PALETTE = np.array([
    [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80], [140, 140, 140],
    [204, 5, 255], [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7], [150, 5, 61], [120, 120, 70],
    [8, 255, 51], [255, 6, 82], [143, 255, 140], [204, 255, 4], [255, 51, 7], [204, 70, 3], [0, 102, 200],
    [61, 230, 250], [255, 6, 51], [11, 102, 255], [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220],
    [255, 9, 92], [112, 9, 255], [8, 255, 214], [7, 255, 224], [255, 184, 6], [10, 255, 71], [255, 41, 10],
    [7, 255, 255], [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7], [255, 122, 8], [0, 255, 20],
    [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255], [140, 140, 140],
    [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0], [153, 255, 0], [0, 0, 255],
    [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255], [11, 200, 200], [255, 82, 0], [0, 255, 245],
    [0, 61, 255], [0, 255, 112], [0, 255, 133], [255, 0, 0], [255, 163, 0], [255, 102, 0], [194, 255, 0],
    [0, 143, 255], [51, 255, 0], [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255], [173, 255, 0],
    [0, 255, 153], [255, 92, 0], [255, 0, 255], [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20],
    [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255], [255, 0, 204], [0, 255, 194], [0, 255, 82],
    [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255], [0, 255, 163], [255, 153, 0],
    [0, 255, 10], [255, 112, 0], [143, 255, 0], [82, 0, 255], [163, 255, 0], [255, 235, 0], [8, 184, 170],
    [133, 0, 255], [0, 255, 92], [184, 0, 255], [255, 0, 31], [0, 184, 255], [0, 214, 255], [255, 0, 112],
    [92, 255, 0], [0, 224, 255], [112, 224, 255], [70, 184, 160], [163, 0, 255], [153, 0, 255], [71, 255, 0],
    [255, 0, 163], [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235], [245, 0, 255],
    [255, 0, 122], [255, 245, 0], [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255], [255, 255, 0],
    [0, 153, 255], [0, 41, 255], [0, 255, 204], [41, 0, 255], [41, 255, 0], [173, 0, 255], [0, 245, 255],
    [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255], [184, 255, 0], [0, 133, 255], [255, 214, 0],
    [25, 194, 194], [102, 255, 0], [92, 0, 255]], np.uint8)


@detector("seg_ufade20k", "ADE20K semantic segmentation by UniFormer-S + UperNet (learned; "
          "upernet_global_small.pth from lllyasviel/ControlNet), 150 classes in ADE20K's palette.",
          params=(WEIGHTS_PARAM,), feeds=("control_v11p_sd15_seg",), needs_weights=PATH)
def seg_ufade20k(image: np.ndarray, weights: str = "") -> np.ndarray:
    path = find_annotator(PATH, "seg_ufade20k", explicit=weights or None, repo=REPO, stand_in="seg_person")
    return paint(segment(load_uniformer(str(path)), image), ADE20K_PALETTE)

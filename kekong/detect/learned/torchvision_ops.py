"""`torchvision::nms` and `torchvision::roi_align` for TorchScript files exported from detectron2 (the
extension's DensePose file), written in torch: torchvision does not install beside kekong's torch, and
without these two operators `torch.jit.load` refuses such a file ("Unknown builtin op"). Registered
once, only where torchvision has not registered its own; the semantics are torchvision's CPU kernels'
(greedy NMS over IoU > threshold, highest score first; ROIAlign's bilinear sampling with `aligned`'s
half-pixel shift and the adaptive sampling grid when `sampling_ratio` ≤ 0).
"""

from __future__ import annotations

import contextlib
import math

import torch

_LIBRARY: torch.library.Library | None = None


def _registered(name: str) -> bool:
    try:
        return torch._C._dispatch_has_kernel(f"torchvision::{name}")  # type: ignore[attr-defined]
    except RuntimeError:
        return False


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the boxes kept, by decreasing score."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    x1, y1, x2, y2 = boxes.float().unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort(descending=True)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for rank, index in enumerate(order.tolist()):
        if suppressed[rank]:
            continue
        keep.append(index)
        rest = order[rank + 1:]
        w = (torch.minimum(x2[index], x2[rest]) - torch.maximum(x1[index], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[index], y2[rest]) - torch.maximum(y1[index], y1[rest])).clamp(min=0)
        inter = w * h
        suppressed[rank + 1:] |= inter / (areas[index] + areas[rest] - inter) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def _bilinear(feature: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """feature (C, H, W) sampled at every (y, x) of the grid ys × xs → (C, len(ys), len(xs)); points
    more than a pixel outside are 0, as in torchvision's kernel."""
    _, height, width = feature.shape
    y, x = ys[:, None].expand(len(ys), len(xs)), xs[None, :].expand(len(ys), len(xs))
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y, x = y.clamp(min=0), x.clamp(min=0)
    y_low, x_low = y.floor().long(), x.floor().long()
    y_top, x_top = y_low >= height - 1, x_low >= width - 1
    y_low, x_low = torch.where(y_top, height - 1, y_low), torch.where(x_top, width - 1, x_low)
    y = torch.where(y_top, y_low.to(y.dtype), y)
    x = torch.where(x_top, x_low.to(x.dtype), x)
    y_high, x_high = (y_low + 1).clamp(max=height - 1), (x_low + 1).clamp(max=width - 1)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    value = (hy * hx * feature[:, y_low, x_low] + hy * lx * feature[:, y_low, x_high]
             + ly * hx * feature[:, y_high, x_low] + ly * lx * feature[:, y_high, x_high])
    return torch.where(outside, torch.zeros_like(value), value)


def roi_align(features: torch.Tensor, rois: torch.Tensor, spatial_scale: float, pooled_height: int,
              pooled_width: int, sampling_ratio: int, aligned: bool) -> torch.Tensor:
    """(K, C, pooled_height, pooled_width) from features (N, C, H, W) and rois (K, 5: batch, x1 y1 x2 y2)."""
    out = features.new_zeros((len(rois), features.shape[1], pooled_height, pooled_width))
    offset = 0.5 if aligned else 0.0
    for k, (batch, *corners) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (v * spatial_scale - offset for v in corners)
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_height, roi_w / pooled_width
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_height)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_width)
        count = max(grid_h * grid_w, 1)
        if grid_h <= 0 or grid_w <= 0:
            continue
        iy = (torch.arange(grid_h, dtype=features.dtype) + 0.5) / grid_h
        ix = (torch.arange(grid_w, dtype=features.dtype) + 0.5) / grid_w
        ys = (y1 + (torch.arange(pooled_height, dtype=features.dtype)[:, None] + iy[None]) * bin_h).reshape(-1)
        xs = (x1 + (torch.arange(pooled_width, dtype=features.dtype)[:, None] + ix[None]) * bin_w).reshape(-1)
        samples = _bilinear(features[int(batch)], ys, xs)  # (C, ph·gh, pw·gw)
        channels = samples.shape[0]
        out[k] = samples.reshape(channels, pooled_height, grid_h, pooled_width, grid_w).sum((2, 4)) / count
    return out


def register() -> None:
    """Make both operators known to TorchScript (torchvision's own, where it is importable, win)."""
    global _LIBRARY
    if _LIBRARY is not None:
        return
    with contextlib.suppress(Exception):  # not installed, or built for another torch: ours stand in
        import torchvision  # noqa: F401  (registers its compiled kernels)
    missing = [name for name in ("nms", "roi_align") if not _registered(name)]
    if not missing:
        return
    _LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
    if "nms" in missing:
        _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBRARY.impl("nms", nms, "CompositeExplicitAutograd")
    if "roi_align" in missing:
        _LIBRARY.define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                        "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")
        _LIBRARY.impl("roi_align", roi_align, "CompositeExplicitAutograd")

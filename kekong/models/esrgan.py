"""ESRGAN-family upscalers (RRDBNet): ESRGAN, Real-ESRGAN x4plus and the community models built on
them (4x-UltraSharp, 4x_foolhardy_Remacri, …) — what A1111 lists from `models/ESRGAN`.

Both key layouts load: BasicSR's (`conv_first`, `body.N.rdbK.convM`, …, as Real-ESRGAN ships, often
under `params_ema`) and the original ESRGAN one (`model.0`, `model.1.sub.N.RDBK.convM.0`, …).
Sizes (features, blocks, growth) are read from the weights. Large images are upscaled in
overlapping tiles, so memory stays bounded, as A1111 does.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kekong.errors import KekongError
from kekong.models.weights import load_state_dict, models_dir

FOLDERS = ("ESRGAN", "RealESRGAN", "upscale_models")  # A1111's two, ComfyUI's one
SUFFIXES = (".pth", ".pt", ".safetensors")


class DenseBlock(nn.Module):
    """Five convolutions, each seeing all earlier outputs; residual scaled by 0.2."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        for index in range(1, 6):
            out = features if index == 5 else growth
            setattr(self, f"conv{index}", nn.Conv2d(features + (index - 1) * growth, out, 3, padding=1))
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for index in range(1, 5):
            outputs.append(self.act(getattr(self, f"conv{index}")(torch.cat(outputs, 1))))
        return x + 0.2 * self.conv5(torch.cat(outputs, 1))


class RRDB(nn.Module):
    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(features, growth) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """×4: two nearest-neighbour ×2 upsamplings after the residual trunk."""

    scale = 4

    def __init__(self, channels: int, features: int, blocks: int, growth: int) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(channels, features, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(features, features, 3, padding=1)
        self.conv_up1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv_up2 = nn.Conv2d(features, features, 3, padding=1)
        self.conv_hr = nn.Conv2d(features, features, 3, padding=1)
        self.conv_last = nn.Conv2d(features, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.conv_first(x)
        feature = feature + self.conv_body(self.body(feature))
        for conv in (self.conv_up1, self.conv_up2):
            feature = self.act(conv(nn.functional.interpolate(feature, scale_factor=2, mode="nearest")))
        return self.conv_last(self.act(self.conv_hr(feature)))


_OLD = {"model.0": "conv_first", "model.3": "conv_up1", "model.6": "conv_up2", "model.8": "conv_hr",
        "model.10": "conv_last"}


def to_basicsr(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original ESRGAN layout → BasicSR's names (what RRDBNet above uses)."""
    if "conv_first.weight" in state:
        return state
    if "model.0.weight" not in state:
        raise KekongError("not an ESRGAN/RRDBNet upscaler (no conv_first or model.0 weights)")
    trunk = max((int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.weight", k))), default=None)
    if trunk is None:
        raise KekongError("not an ESRGAN/RRDBNet upscaler (no residual trunk under model.1.sub)")
    renamed = {}
    for key, value in state.items():
        if match := re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key):
            block, rdb, conv, kind = match.groups()
            renamed[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        elif match := re.match(rf"model\.1\.sub\.{trunk}\.(weight|bias)", key):
            renamed[f"conv_body.{match.group(1)}"] = value
        else:
            prefix, _, kind = key.rpartition(".")
            if prefix not in _OLD:
                raise KekongError(f"unexpected tensor {key!r} for an ESRGAN upscaler (a ×4 RRDBNet is supported)")
            renamed[f"{_OLD[prefix]}.{kind}"] = value
    return renamed


@cache
def load(path: Path) -> RRDBNet:
    state = load_state_dict(path)
    for wrapper in ("params_ema", "params"):  # BasicSR training checkpoints
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    state = to_basicsr(state)
    first = state["conv_first.weight"]
    blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    model = RRDBNet(first.shape[1], first.shape[0], blocks, state["body.0.rdb1.conv1.weight"].shape[0])
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as error:
        raise KekongError(f"{path.name}: not a ×4 RRDBNet upscaler ({str(error).splitlines()[0]})") from None
    return model.eval()


def find(name: str) -> Path | None:
    """An upscaler by A1111's name (the file stem) in the models folder's ESRGAN folders."""
    for folder in FOLDERS:
        for suffix in SUFFIXES:
            candidate = models_dir() / folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def available() -> list[str]:
    return sorted({p.stem for folder in FOLDERS if (models_dir() / folder).is_dir()
                   for p in (models_dir() / folder).iterdir() if p.suffix in SUFFIXES})


@torch.no_grad()
def upscale(model: RRDBNet, image: np.ndarray, tile: int = 192, overlap: int = 16) -> np.ndarray:
    """uint8 HxWx3 → uint8 (4H)x(4W)x3, in overlapping tiles (each tile's border is discarded)."""
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    _, _, height, width = pixels.shape
    scale = model.scale
    out = torch.zeros(1, 3, height * scale, width * scale)
    step = tile - 2 * overlap
    for top in range(0, height, step):
        for left in range(0, width, step):
            y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
            y1, x1 = min(top + step + overlap, height), min(left + step + overlap, width)
            result = model(pixels[:, :, y0:y1, x0:x1])
            keep_y, keep_x = (top - y0) * scale, (left - x0) * scale
            h, w = (min(top + step, height) - top) * scale, (min(left + step, width) - left) * scale
            out[:, :, top * scale:top * scale + h, left * scale:left * scale + w] = \
                result[:, :, keep_y:keep_y + h, keep_x:keep_x + w]
    return (out[0].clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def upscale_to(model: RRDBNet, image: np.ndarray, size_hw: tuple[int, int], max_pixels: int) -> np.ndarray:
    """×4 until the image is at least `size_hw` (as A1111 does; the caller resizes to exactly it),
    each step refused before it runs when its result would pass `max_pixels`."""
    from kekong.errors import ParameterError

    while image.shape[0] < size_hw[0] or image.shape[1] < size_hw[1]:
        if image.shape[0] * image.shape[1] * 16 > max_pixels:
            raise ParameterError(f"the upscaler works in steps of ×4: the step from {image.shape[1]}x"
                                 f"{image.shape[0]} would pass {max_pixels:,} pixels")
        image = upscale(model, image)
    return image

"""IP-Adapter: an image as a prompt (h94's IP-Adapter and IP-Adapter Plus, SD 1.5 and SDXL).

A unit with an `ip-adapter_clip_*` module and `model=` an IP-Adapter file (A1111 keeps them in
models/ControlNet, ComfyUI in models/ipadapter) encodes its image with a CLIP vision encoder;
diffusers' decoupled cross-attention processors read the result beside the text. The encoder is
found where users keep it: a transformers folder or file in the models folder's `clip_vision/`
(ComfyUI's CLIP-ViT-H-14 / ViT-bigG files), or h94/IP-Adapter's image encoders in the Hugging Face
cache — the one whose width the adapter expects. The face variants that read CLIP (plus-face,
full-face) work; Face ID variants need insightface face embeddings and are refused by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kekong.choices import IP_ADAPTER_MODULES, is_ip_module  # noqa: F401 (callers import it from here too)
from kekong.errors import KekongError, MissingWeightsError
from kekong.models import precision

MODULES = IP_ADAPTER_MODULES
_CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None]
_CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]
# OpenCLIP ViT-H/14 and ViT-bigG/14 as transformers configs (for single files without one)
_VISION = {1024: dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                      patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu"),
           1280: dict(hidden_size=1664, intermediate_size=8192, num_hidden_layers=48, num_attention_heads=16,
                      patch_size=14, image_size=224, projection_dim=1280, hidden_act="gelu")}


@dataclass(frozen=True)
class IPAdapter:
    name: str
    state: dict[str, dict[str, torch.Tensor]]  # {"image_proj": …, "ip_adapter": …}, as diffusers loads it
    plus: bool  # reads the encoder's penultimate hidden states (a resampler), not its pooled embedding
    reads: int  # the encoder width it reads: projection dim (plain) or hidden size (plus)
    cross_attention_dim: int


@cache
def load(path: Path) -> IPAdapter:
    from kekong.models.weights import load_state_dict

    raw = load_state_dict(path)
    state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in raw.items():
        if isinstance(value, dict) and key in state:  # .bin files nest the two parts
            state[key].update(value)
            continue
        part, _, rest = key.partition(".")
        if part not in state:
            raise KekongError(f"{path.name}: not an IP-Adapter file (unexpected key {key!r})")
        state[part][rest] = value
    projection = state["image_proj"]
    if "perceiver_resampler.proj_in.weight" in projection or (
            "norm.weight" in projection and "proj.weight" not in projection):
        raise KekongError(f"{path.name} is an IP-Adapter Face ID model: it needs insightface face embeddings, "
                          "which kekong does not compute")
    if "proj.3.weight" in projection:  # full-face: an MLP over all the encoder's hidden-state tokens
        plus, reads = True, projection["proj.0.weight"].shape[-1]
        cross = projection["proj.3.weight"].shape[0]
    elif "proj.weight" in projection:
        plus, reads = False, projection["proj.weight"].shape[-1]
        cross = projection["proj.weight"].shape[0] // 4
    elif "latents" in projection and "proj_in.weight" in projection:
        plus, reads = True, projection["proj_in.weight"].shape[-1]
        cross = projection["proj_out.weight"].shape[0]
    else:
        raise KekongError(f"{path.name}: not an IP-Adapter file (no image projection)")
    return IPAdapter(path.stem, state, plus, int(reads), int(cross))


def find_image_encoder(adapter: IPAdapter) -> Path:
    """The CLIP vision encoder this adapter reads (its width decides), or an error saying where to put one."""
    from kekong.models.refs import _hub_cache
    from kekong.models.weights import models_dir

    candidates: list[Path] = []
    folder = models_dir() / "clip_vision"
    if folder.is_dir():
        candidates += sorted(folder.iterdir())
    hub = _hub_cache("h94/IP-Adapter")
    if hub is not None:
        candidates += [hub / "models" / "image_encoder", hub / "sdxl_models" / "image_encoder"]
    for candidate in candidates:
        if _width(candidate, adapter.plus) == adapter.reads:
            return candidate
    kind = {1024: "ViT-H/14", 1280: "ViT-bigG/14"}.get(adapter.reads, f"width {adapter.reads}")
    width = "hidden size" if adapter.plus else "projection"
    raise MissingWeightsError(
        f"IP-Adapter {adapter.name} needs a CLIP vision encoder ({kind}, {width} {adapter.reads}); none found "
        f"in {folder} or the Hugging Face cache (h94/IP-Adapter image_encoder). "
        "Put the encoder's folder or file (e.g. CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors) in clip_vision/")


def _width(path: Path, plus: bool) -> int | None:
    import json

    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text())
        config = config.get("vision_config", config)
        return config.get("hidden_size" if plus else "projection_dim")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            if "visual_projection.weight" not in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                return None
            hidden, projection = handle.get_slice("visual_projection.weight").get_shape()[::-1]
        return hidden if plus else projection
    return None


@cache
def load_image_encoder(path: Path) -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if path.is_dir():
        return CLIPVisionModelWithProjection.from_pretrained(path, local_files_only=True, dtype=torch.float32).eval()
    from kekong.models.weights import load_state_dict

    state = load_state_dict(path)
    projection = state["visual_projection.weight"].shape[0]
    if projection not in _VISION:
        raise KekongError(f"{path.name}: a CLIP vision encoder of projection {projection} has no bundled config; "
                          "use its transformers folder (config.json beside the weights)")
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**_VISION[projection]))
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if [k for k in missing if "position_ids" not in k] or unexpected:
        raise KekongError(f"{path.name}: not a transformers CLIP vision encoder ({(missing + unexpected)[0]})")
    return model.eval()


@torch.no_grad()
def image_embeds(encoder: Any, image: np.ndarray, plus: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond) for one image, shaped (1, 1, dim) or (1, 1, tokens, dim) as diffusers reads them.
    The unconditional side is zeros (plain) or the encoding of a black image (plus), as IP-Adapter's
    own pipelines do."""
    size = encoder.config.image_size
    pixels = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    short = min(pixels.shape[-2:])
    scale = size / short
    pixels = torch.nn.functional.interpolate(pixels, scale_factor=scale, mode="bicubic", antialias=True,
                                             align_corners=False).clamp(0, 1)
    top, left = (pixels.shape[-2] - size) // 2, (pixels.shape[-1] - size) // 2
    pixels = (pixels[:, :, top:top + size, left:left + size] - _CLIP_MEAN) / _CLIP_STD
    if not plus:
        cond = encoder(pixel_values=pixels).image_embeds
        return cond[:, None], torch.zeros_like(cond)[:, None]
    both = encoder(pixel_values=torch.cat([pixels, torch.zeros_like(pixels)]), output_hidden_states=True)
    hidden = both.hidden_states[-2]
    return hidden[:1, None], hidden[1:, None]


@contextmanager
def applied(unet: Any, adapters: list[IPAdapter]) -> Iterator[None]:
    """Install the adapters' attention processors and image projection on `unet` for one request;
    the UNet is given back exactly as it was (it lives in the model cache)."""
    if not adapters:
        yield
        return
    from kekong.models.patch import restored

    with restored(unet):  # inside `patch.patched`: the model's lock is held
        unet._load_ip_adapter_weights([adapter.state for adapter in adapters])  # ends with unet.to(unet.dtype)
        precision.restore_storage(unet)  # an fp16-stored UNet's weights back to fp16 (they compute in fp32)
        unet.encoder_hid_proj.float()
        yield


def set_scales(unet: Any, scales: list[float]) -> None:
    """Each adapter's strength for the next UNet call (0 outside its guidance window)."""
    for processor in unet.attn_processors.values():
        if hasattr(processor, "to_k_ip"):
            processor.scale = list(scales)

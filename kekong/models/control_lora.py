"""Control-LoRA (Stability AI's control-lora canny/depth/recolor/sketch for SDXL, and files in the
same format): a ControlNet stored as low-rank deltas over the base model's own UNet, plus full
weights for its hint block, zero convolutions and norms. The ControlNet is built for the base it
runs with — a copy of that UNet's encoder (diffusers' `from_unet`), with the file loaded through
diffusers' reader for this format — and cached per base model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kekong.errors import KekongError
from kekong.models.weights import load_state_dict

MARKER = "lora_controlnet"


def is_control_lora(path: Path) -> bool:
    """A Control-LoRA file, from its keys (read from the header only for .safetensors)."""
    if not path.is_file():
        return False
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            return MARKER in handle.keys()  # noqa: SIM118 - safe_open is not a mapping
    return MARKER in load_state_dict(path)


def load(base: Any, path: Path) -> Any:
    from kekong.models.load import CACHE

    with base.lock:  # built from the base's UNet: not while a request has LoRA layers in it
        return CACHE.get(f"control-lora:{base.ref.path.resolve()}:{path.resolve()}", lambda: _build(base, path))


def hint_channels(state: dict) -> tuple[int, ...]:
    """The hint block's channel widths: its first conv, then each stride-2 level's."""
    convs = sorted((int(key.split(".")[1]), tensor.shape[0]) for key, tensor in state.items()
                   if key.startswith("input_hint_block.") and key.endswith(".weight") and tensor.ndim == 4)
    widths = [out for _, out in convs[:-1]]  # the last conv maps to the UNet's width
    return (widths[0], *widths[2::2])


def _build(base: Any, path: Path) -> Any:
    from diffusers import ControlNetModel

    state = load_state_dict(path)
    try:
        controlnet = ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=hint_channels(state))
        controlnet.load_lora_adapter(state, prefix=None)
    except (KeyError, RuntimeError, ValueError, IndexError) as error:
        raise KekongError(f"Control-LoRA {path.stem} does not fit the base model {base.name} "
                          f"({str(error).splitlines()[0][:200]}); pick the Control-LoRA made for it") from None
    return controlnet.float().eval()

"""Single-file checkpoints as A1111/ComfyUI users keep them (original LDM / ControlNet key
layouts), converted to diffusers components with configs that ship with kekong — offline.

diffusers' own conversion functions do the key mapping; this module picks the architecture,
builds each component from the bundled (or a given) config and loads strictly, so a file that
does not match fails with a message instead of loading half its weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from kekong.errors import KekongError

CONFIGS = Path(__file__).resolve().parent / "configs"
TOKENIZER_DIR = CONFIGS / "clip_tokenizer"

_UNET_PREFIX = "model.diffusion_model."
_SDXL_MARKER = "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"
_CLIP_L_MARKERS = ("cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
                   "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight")


def base_family(state: dict[str, torch.Tensor]) -> str:
    """"sd15", "sd2" or "sdxl" for an LDM checkpoint; a clear error for anything else."""
    if not any(key.startswith(_UNET_PREFIX) for key in state):
        raise KekongError("not a Stable Diffusion checkpoint: no `model.diffusion_model.` weights "
                          "(is this a ControlNet, LoRA or VAE file?)")
    if _SDXL_MARKER in state:
        return "sdxl"
    if any(key in state for key in _CLIP_L_MARKERS):
        return "sd15"
    if "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight" in state:
        return "sd2"  # OpenCLIP ViT-H text encoder
    raise KekongError("unrecognised checkpoint: none of the SD 1.x (CLIP ViT-L), SD 2.x (OpenCLIP ViT-H) or SDXL "
                      "text encoders found")


def load_components(state: dict[str, torch.Tensor], config_dir: Path | None = None) -> dict[str, Any]:
    """unet, vae, text_encoder(s), tokenizer(s) and scheduler config from an LDM state dict."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        create_diffusers_clip_model_from_ldm,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    family = base_family(state)
    config_dir = Path(config_dir) if config_dir else CONFIGS / family
    unet_config = UNet2DConditionModel.load_config(config_dir / "unet")
    in_channels = state[_UNET_PREFIX + "input_blocks.0.0.weight"].shape[1]
    unet_config["in_channels"] = in_channels  # 9 for inpainting checkpoints
    unet = _strict(UNet2DConditionModel.from_config(unet_config),
                   convert_ldm_unet_checkpoint(state, unet_config), "UNet")
    vae_config = AutoencoderKL.load_config(config_dir / "vae")
    vae = _strict(AutoencoderKL.from_config(vae_config), convert_ldm_vae_checkpoint(state, vae_config), "VAE")
    encoders = [create_diffusers_clip_model_from_ldm(
        CLIPTextModel, state, subfolder="text_encoder", config=str(config_dir), local_files_only=True)]
    if family == "sdxl":
        encoders.append(create_diffusers_clip_model_from_ldm(
            CLIPTextModelWithProjection, state, subfolder="text_encoder_2", config=str(config_dir),
            local_files_only=True))
    scheduler = json.loads((config_dir / "scheduler" / "scheduler_config.json").read_text())
    return {"unet": unet.eval(), "vae": vae.eval(), "text_encoders": [e.eval() for e in encoders],
            # SD 2.x and SDXL's OpenCLIP encoders were trained with "!" as padding
            "tokenizers": [clip_tokenizer(pad="!" if family == "sd2" else "<|endoftext|>")]
            + ([clip_tokenizer(pad="!")] if family == "sdxl" else []),
            "scheduler_config": scheduler}


def predicts_v(checkpoint: Path) -> bool:
    """A v-prediction checkpoint, as A1111 tells: an original-config YAML beside it (same name,
    `.yaml`) that says `parameterization: "v"`."""
    import re

    config = Path(checkpoint).with_suffix(".yaml")
    if not config.is_file():
        return False
    return re.search(r"""^\s*parameterization:\s*["']?v["']?\s*$""", config.read_text(errors="replace"),
                     re.MULTILINE) is not None


def clip_tokenizer(pad: str = "<|endoftext|>") -> Any:
    """The CLIP BPE tokenizer from the vocabulary that ships with kekong (SDXL's second one pads with "!")."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(TOKENIZER_DIR / "vocab.json"), str(TOKENIZER_DIR / "merges.txt"),
                         pad_token=pad, model_max_length=77)


def controlnet_family(state: dict[str, torch.Tensor]) -> str:
    """"sd15", "sdxl" or "sd2" from the cross-attention width of a ControlNet state dict."""
    for key, tensor in state.items():
        if key.endswith("attn2.to_k.weight"):
            return {768: "sd15", 2048: "sdxl", 1024: "sd2"}.get(tensor.shape[1], f"cross-attention {tensor.shape[1]}")
    raise KekongError("not a ControlNet: no cross-attention weights found")


def load_controlnet(state: dict[str, torch.Tensor], config_dir: Path | None = None) -> Any:
    """A ControlNetModel from a single file in the LDM layout (`control_model.…`, or unprefixed)
    or the diffusers layout."""
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    if config_dir is None:
        family = controlnet_family(state)
        if family not in ("sd15", "sdxl"):
            raise KekongError(f"ControlNet for {family} is not supported as a single file; use a diffusers folder")
        config_dir = CONFIGS / f"controlnet_{family}"
    config = ControlNetModel.load_config(config_dir)
    if "controlnet_cond_embedding.conv_in.weight" in state:
        converted = state
    else:
        if not any(k.startswith(("control_model.", "input_hint_block.", "time_embed.")) for k in state):
            raise KekongError("not a ControlNet checkpoint (no input hint block)")
        converted = convert_controlnet_checkpoint(state, config)
    return _strict(ControlNetModel.from_config(config), converted, "ControlNet").eval()


def _strict(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> torch.nn.Module:
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise KekongError(f"{what} weights do not fit the architecture: {str(exc).splitlines()[-1].strip()}") from None
    if missing:
        raise KekongError(f"{what} weights are incomplete: {len(missing)} tensors missing, e.g. {missing[0]}")
    if unexpected:
        raise KekongError(f"{what} weights have {len(unexpected)} unexpected tensors, e.g. {unexpected[0]}")
    return model

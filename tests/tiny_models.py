"""Tiny random Stable-Diffusion-shaped models, built offline by the tests (sizes as in diffusers'
own tests). They have every part a real model has, so every code path runs — in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TOKENIZER_FILES = Path(__file__).resolve().parent.parent / "kekong" / "models" / "configs" / "clip_tokenizer"


def _clip_config(hidden: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(hidden_size=hidden, intermediate_size=37, num_hidden_layers=3, num_attention_heads=4,
                          max_position_embeddings=77, vocab_size=49408, projection_dim=hidden,
                          bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)


def tiny_unet(sdxl: bool = False, in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    extra = {}
    if sdxl:
        # the second text encoder is wider (48) than the first (32), as bigG is wider than CLIP-L
        extra = {"addition_embed_type": "text_time", "addition_time_embed_dim": 8,
                 "projection_class_embeddings_input_dim": 8 * 6 + 48, "transformer_layers_per_block": (1, 2),
                 "use_linear_projection": True, "attention_head_dim": (2, 4)}
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D") if sdxl else ("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D") if sdxl else ("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=80 if sdxl else 32, norm_num_groups=32, **({"attention_head_dim": 2} | extra))


def tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    # four levels, like SD's VAE: images are 8× the latent size, as ControlNet's hint block assumes
    return AutoencoderKL(block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         layers_per_block=1, norm_num_groups=32, sample_size=64)


def build_tiny_base(folder: Path, sdxl: bool = False, in_channels: int = 4) -> Path:
    """A diffusers folder with a tiny UNet, VAE, CLIP text encoder(s) and the real CLIP tokenizer."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = Path(folder)
    tiny_unet(sdxl, in_channels).save_pretrained(folder / "unet")
    tiny_vae().save_pretrained(folder / "vae")
    torch.manual_seed(0)
    CLIPTextModel(_clip_config()).save_pretrained(folder / "text_encoder")
    tokenizer = CLIPTokenizer(str(TOKENIZER_FILES / "vocab.json"), str(TOKENIZER_FILES / "merges.txt"),
                              model_max_length=77)
    tokenizer.save_pretrained(folder / "tokenizer")
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"]}
    if sdxl:
        CLIPTextModelWithProjection(_clip_config(hidden=48)).save_pretrained(folder / "text_encoder_2")
        CLIPTokenizer(str(TOKENIZER_FILES / "vocab.json"), str(TOKENIZER_FILES / "merges.txt"),
                      pad_token="!", model_max_length=77).save_pretrained(folder / "tokenizer_2")
        index.update(_class_name="StableDiffusionXLPipeline",
                     text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
                     tokenizer_2=["transformers", "CLIPTokenizer"])
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({
        "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
        "clip_sample": False}))
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def build_tiny_controlnet(folder: Path, sdxl: bool = False, seed: int = 1) -> Path:
    """A tiny ControlNet from the tiny UNet, with its zero convolutions re-initialised (a fresh
    ControlNet outputs exactly zero, which would hide every bug)."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(tiny_unet(sdxl))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in controlnet.named_parameters():
            if "zero_conv" in name or "controlnet_down_blocks" in name or "controlnet_mid_block" in name \
                    or "conv_out" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    controlnet.save_pretrained(folder)
    return Path(folder)


def build_tiny_refiner(folder: Path) -> Path:
    """An SDXL-refiner-shaped model: OpenCLIP-bigG's stand-in alone (text_encoder_2), and a UNet
    whose micro-conditioning has five slots (size, crop, aesthetic score) instead of six."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(3)
    UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=48, norm_num_groups=32, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=8 * 5 + 48, use_linear_projection=True, attention_head_dim=(2, 4),
    ).save_pretrained(folder / "unet")
    tiny_vae().save_pretrained(folder / "vae")
    CLIPTextModelWithProjection(_clip_config(hidden=48)).save_pretrained(folder / "text_encoder_2")
    CLIPTokenizer(str(TOKENIZER_FILES / "vocab.json"), str(TOKENIZER_FILES / "merges.txt"), pad_token="!",
                  model_max_length=77).save_pretrained(folder / "tokenizer_2")
    base = json.loads((build_tiny_base(folder / "_sdxl", sdxl=True) / "model_index.json").read_text())
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        (folder / "_sdxl" / "scheduler" / "scheduler_config.json").read_text())
    index = {**base, "_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None],
             "tokenizer": [None, None]}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def build_tiny_union(folder: Path, control_types: int = 8) -> Path:
    """A ControlNet Union (ProMax-shaped: 8 control types) for the tiny SDXL UNet, as a diffusers folder."""
    from diffusers import ControlNetUnionModel

    config = dict(ControlNetUnionModel.from_unet(tiny_unet(sdxl=True), load_weights_from_unet=False).config)
    config.update(num_control_type=control_types, num_trans_channel=32, num_proj_channel=32, num_trans_head=2,
                  conditioning_embedding_out_channels=(16, 16, 32, 32))
    torch.manual_seed(5)
    model = ControlNetUnionModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    with torch.no_grad():  # zero convolutions start at zero; make them act, as a trained model's do
        for conv in [*model.controlnet_down_blocks, model.controlnet_mid_block]:
            conv.weight.normal_(0, 0.3)
    model.save_pretrained(folder)
    return Path(folder)


def _ldm_name(name: str) -> str:
    """A diffusers ControlNet (SDXL layout, 2 layers per block) parameter name → the LDM name SAI's
    Control-LoRA files use."""
    import re

    resnet = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
              "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", name):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = 1 + block * 3 + layer
        if kind == "resnets":
            first, _, tail = rest.partition(".")
            return f"input_blocks.{index}.0.{resnet.get(first, first)}.{tail}"
        return f"input_blocks.{index}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", name):
        return f"input_blocks.{1 + int(m[1]) * 3 + 2}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", name):
        kind, layer, rest = m[1], int(m[2]), m[3]
        if kind == "attentions":
            return f"middle_block.1.{rest}"
        first, _, tail = rest.partition(".")
        return f"middle_block.{2 * layer}.{resnet.get(first, first)}.{tail}"
    if m := re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", name):
        return f"zero_convs.{m[1]}.0.{m[2]}"
    if m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.*)", name):
        return f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
    fixed = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.",
             "time_embedding.linear_2.": "time_embed.2.", "add_embedding.linear_1.": "label_emb.0.0.",
             "add_embedding.linear_2.": "label_emb.0.2.", "controlnet_mid_block.": "middle_block_out.0.",
             "controlnet_cond_embedding.conv_in.": "input_hint_block.0.",
             "controlnet_cond_embedding.conv_out.": "input_hint_block.14."}
    for prefix, ldm in fixed.items():
        if name.startswith(prefix):
            return ldm + name[len(prefix):]
    raise KeyError(name)


LORA_LAYERS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out", "conv1",
               "conv2", "conv_in", "conv_shortcut", "linear_1", "linear_2", "time_emb_proj", "downsamplers.0.conv")


def build_tiny_control_lora(path: Path, rank: int = 4) -> Path:
    """A Stability-AI-style Control-LoRA for the tiny SDXL UNet: LoRA up/down pairs over the UNet's
    encoder layers, full weights for norms, biases, the hint block and the zero convolutions, and the
    `lora_controlnet` marker — in the LDM names SAI's files use."""
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    controlnet = ControlNetModel.from_unet(tiny_unet(sdxl=True), conditioning_embedding_out_channels=(16, 16, 32, 32))
    torch.manual_seed(11)
    state = {"lora_controlnet": torch.tensor([])}
    for name, tensor in controlnet.state_dict().items():
        module, _, kind = name.rpartition(".")
        is_lora = kind == "weight" and tensor.ndim > 1 and not module.startswith("controlnet_") and \
            any(module.endswith(layer) for layer in LORA_LAYERS)
        ldm = _ldm_name(name)
        if is_lora:
            out, rest = tensor.shape[0], tensor.shape[1:]
            state[ldm[: -len(".weight")] + ".up"] = torch.randn(out, rank, *([1] * (len(rest) - 1))) * 0.1
            state[ldm[: -len(".weight")] + ".down"] = torch.randn(rank, *rest) * 0.1
        else:
            state[ldm] = torch.randn_like(tensor) * 0.1 if module.startswith("controlnet_") else tensor.clone()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return Path(path)

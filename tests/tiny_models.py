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

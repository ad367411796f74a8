"""diffusers → original LDM key layout (as A1111/ComfyUI single files hold it), for tiny test
models: the inverse of the mapping diffusers applies when loading a single file."""

from __future__ import annotations

import torch

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{RESNET.get(head, head)}.{tail}"


def unet_key(key: str, layers: int, n_blocks: int, has_attention_up: list[bool]) -> str | None:
    """One diffusers UNet/ControlNet-encoder key → its LDM name (None: not part of the layout)."""
    stride = layers + 1
    simple = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
              "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
              "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for old, new in simple.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    parts = key.split(".")
    if parts[0] == "down_blocks":
        i = int(parts[1])
        if parts[2] == "resnets":
            return f"input_blocks.{stride * i + int(parts[3]) + 1}.0." + _resnet(".".join(parts[4:]))
        if parts[2] == "attentions":
            return f"input_blocks.{stride * i + int(parts[3]) + 1}.1." + ".".join(parts[4:])
        if parts[2] == "downsamplers":
            return f"input_blocks.{stride * (i + 1)}.0.op." + ".".join(parts[5:])
    if parts[0] == "mid_block":
        if parts[1] == "resnets":
            return f"middle_block.{2 * int(parts[2])}." + _resnet(".".join(parts[3:]))
        return "middle_block.1." + ".".join(parts[3:])
    if parts[0] == "up_blocks":
        i = int(parts[1])
        if parts[2] == "resnets":
            return f"output_blocks.{stride * i + int(parts[3])}.0." + _resnet(".".join(parts[4:]))
        if parts[2] == "attentions":
            return f"output_blocks.{stride * i + int(parts[3])}.1." + ".".join(parts[4:])
        if parts[2] == "upsamplers":
            slot = 2 if has_attention_up[i] else 1
            return f"output_blocks.{stride * i + layers}.{slot}.conv." + ".".join(parts[5:])
    return None


def unet_to_ldm(unet, prefix: str = "model.diffusion_model.") -> dict[str, torch.Tensor]:
    config = unet.config
    attention_up = ["CrossAttn" in name for name in config.up_block_types]
    out = {}
    for key, value in unet.state_dict().items():
        new = unet_key(key, config.layers_per_block, len(config.block_out_channels), attention_up)
        assert new is not None, key
        out[prefix + new] = value
    return out


def controlnet_to_ldm(controlnet, prefix: str = "control_model.") -> dict[str, torch.Tensor]:
    config = controlnet.config
    blocks = len(config.conditioning_embedding_out_channels) - 1
    out = {}
    for key, value in controlnet.state_dict().items():
        if key.startswith("controlnet_cond_embedding."):
            rest = key[len("controlnet_cond_embedding."):]
            if rest.startswith("conv_in."):
                new = "input_hint_block.0." + rest[len("conv_in."):]
            elif rest.startswith("conv_out."):
                new = f"input_hint_block.{2 * (2 * blocks + 1)}." + rest[len("conv_out."):]
            else:
                index = int(rest.split(".")[1])
                new = f"input_hint_block.{2 * (index + 1)}." + ".".join(rest.split(".")[2:])
        elif key.startswith("controlnet_down_blocks."):
            new = "zero_convs.{}.0.{}".format(*key.split(".")[1:3])
        elif key.startswith("controlnet_mid_block."):
            new = "middle_block_out.0." + key.split(".", 1)[1]
        else:
            new = unet_key(key, config.layers_per_block, len(config.block_out_channels), [])
        out[prefix + new] = value
    return out


VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out", "group_norm": "norm"}


def vae_to_ldm(vae, prefix: str = "first_stage_model.") -> dict[str, torch.Tensor]:
    n = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        new = key.replace("conv_norm_out", "norm_out")
        parts = new.split(".")
        if parts[1] == "down_blocks":
            kind = parts[3]
            new = f"encoder.down.{parts[2]}." + (f"block.{parts[4]}." + ".".join(parts[5:]) if kind == "resnets"
                                                 else "downsample." + ".".join(parts[5:]))
        elif parts[1] == "up_blocks":
            kind = parts[3]
            block = n - 1 - int(parts[2])
            new = f"decoder.up.{block}." + (f"block.{parts[4]}." + ".".join(parts[5:]) if kind == "resnets"
                                            else "upsample." + ".".join(parts[5:]))
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                new = f"{parts[0]}.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:])
            else:
                rest = ".".join(parts[4:])
                for old, replacement in VAE_ATTENTION.items():
                    if rest.startswith(old + "."):
                        rest = replacement + rest[len(old):]
                new = f"{parts[0]}.mid.attn_1.{rest}"
                if value.ndim == 2:
                    value = value[:, :, None, None]
        for old, replacement in VAE_RESNET.items():
            new = new.replace(old, replacement)
        out[prefix + new] = value
    return out


def clip_to_ldm(encoder, prefix: str = "cond_stage_model.transformer.") -> dict[str, torch.Tensor]:
    out = {}
    for key, value in encoder.state_dict().items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out[prefix + key] = value
    return out


def open_clip_to_ldm(encoder, prefix: str = "conditioner.embedders.1.model.") -> dict[str, torch.Tensor]:
    """SDXL's second text encoder (OpenCLIP bigG layout: fused q/k/v, transposed projection)."""
    state = {k if k.startswith(("text_model.", "text_projection")) else "text_model." + k: v
             for k, v in encoder.state_dict().items()}
    out = {prefix + "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
           prefix + "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
           prefix + "ln_final.weight": state["text_model.final_layer_norm.weight"],
           prefix + "ln_final.bias": state["text_model.final_layer_norm.bias"],
           # SD 2.x's encoder is used without its projection: an identity stands in for the tiny one
           prefix + "text_projection": state["text_projection.weight"].T.contiguous() if "text_projection.weight" in
           state else torch.eye(encoder.config.hidden_size)}
    for i in range(encoder.config.num_hidden_layers):
        old = f"text_model.encoder.layers.{i}."
        new = f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{new}attn.in_proj_{kind}"] = torch.cat([state[f"{old}self_attn.{p}_proj.{kind}"] for p in "qkv"])
            out[f"{new}attn.out_proj.{kind}"] = state[f"{old}self_attn.out_proj.{kind}"]
            out[f"{new}ln_1.{kind}"] = state[f"{old}layer_norm1.{kind}"]
            out[f"{new}ln_2.{kind}"] = state[f"{old}layer_norm2.{kind}"]
            out[f"{new}mlp.c_fc.{kind}"] = state[f"{old}mlp.fc1.{kind}"]
            out[f"{new}mlp.c_proj.{kind}"] = state[f"{old}mlp.fc2.{kind}"]
    return out

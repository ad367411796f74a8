"""IP-Adapter: an image as a prompt through decoupled cross-attention, with a CLIP vision encoder
found in the models folder; the cached UNet is given back unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import kekong
from kekong.errors import KekongError, MissingWeightsError, ParameterError
from kekong.io import save_image
from kekong.models import ip_adapter
from kekong.models.load import load_base
from tests.tiny_models import build_tiny_base


def tiny_ip_adapter(unet, embed_dim: int = 16) -> dict[str, torch.Tensor]:
    """An IP-Adapter file for `unet`: image projection + to_k_ip/to_v_ip for each cross-attention,
    numbered as h94's files number them (1, 3, 5, …)."""
    torch.manual_seed(7)
    cross = unet.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(4 * cross, embed_dim) * 0.5,
             "image_proj.proj.bias": torch.zeros(4 * cross),
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            block = name.split(".")
            channels = unet.config.block_out_channels
            hidden = channels[-1] if block[0] == "mid_block" else (
                list(reversed(channels))[int(block[1])] if block[0] == "up_blocks" else channels[int(block[1])])
            state[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross)
            state[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross)
            key_id += 2
    return state


def tiny_ip_adapter_plus(unet, encoder_width: int = 32, dim: int = 32) -> dict[str, torch.Tensor]:
    """An IP-Adapter Plus file in h94's layout: a 4-layer perceiver resampler (64-wide heads) that reads
    the encoder's penultimate hidden states, and the same cross-attention weights as the plain one."""
    torch.manual_seed(9)
    cross = unet.config.cross_attention_dim
    proj = {"latents": torch.randn(1, 4, dim), "proj_in.weight": torch.randn(dim, encoder_width) * 0.2,
            "proj_in.bias": torch.zeros(dim), "proj_out.weight": torch.randn(cross, dim) * 0.2,
            "proj_out.bias": torch.zeros(cross), "norm_out.weight": torch.ones(cross),
            "norm_out.bias": torch.zeros(cross)}
    for i in range(4):
        proj.update({f"layers.{i}.0.norm1.weight": torch.ones(dim), f"layers.{i}.0.norm1.bias": torch.zeros(dim),
                     f"layers.{i}.0.norm2.weight": torch.ones(dim), f"layers.{i}.0.norm2.bias": torch.zeros(dim),
                     f"layers.{i}.0.to_q.weight": torch.randn(64, dim) * 0.1,
                     f"layers.{i}.0.to_kv.weight": torch.randn(128, dim) * 0.1,
                     f"layers.{i}.0.to_out.weight": torch.randn(dim, 64) * 0.1,
                     f"layers.{i}.1.0.weight": torch.ones(dim), f"layers.{i}.1.0.bias": torch.zeros(dim),
                     f"layers.{i}.1.1.weight": torch.randn(4 * dim, dim) * 0.1,
                     f"layers.{i}.1.3.weight": torch.randn(dim, 4 * dim) * 0.1})
    attention = {k: v for k, v in tiny_ip_adapter(unet).items() if k.startswith("ip_adapter.")}
    return {**{f"image_proj.{k}": v for k, v in proj.items()}, **attention}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = tmp_path_factory.mktemp("ip")
    base = str(build_tiny_base(root / "sd15"))
    models = root / "models"
    (models / "ControlNet").mkdir(parents=True)
    unet = load_base(base).unet
    save_file(tiny_ip_adapter(unet), str(models / "ControlNet" / "ip-adapter_tiny.safetensors"))
    save_file(tiny_ip_adapter_plus(unet), str(models / "ControlNet" / "ip-adapter-plus_tiny.safetensors"))
    torch.manual_seed(8)
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                                   num_attention_heads=4, image_size=32, patch_size=8,
                                                   projection_dim=16)).save_pretrained(models / "clip_vision" / "vit")
    rng = np.random.default_rng(0)
    images = [str(save_image(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8), root / f"ref{i}.png"))
              for i in range(2)]
    return {"base": base, "models": models, "images": images}


@pytest.fixture
def env(setup, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(setup["models"]))
    return setup


def run(env, image: int = 0, **unit):
    controls = [{"module": "ip-adapter_clip_sd15", "model": "ip-adapter_tiny", "image": env["images"][image],
                 **unit}] if unit.get("weight", 1) is not None else []
    return kekong.generate(prompt="a cat", model=env["base"], steps=4, sampler="Euler", width=64, height=64,
                           seed=2, controls=controls)[0].image


def test_the_image_prompt_steers_and_weight_zero_is_no_prompt(env):
    plain = kekong.generate(prompt="a cat", model=env["base"], steps=4, sampler="Euler", width=64, height=64,
                            seed=2)[0].image
    steered, other = run(env, weight=1.0), run(env, image=1, weight=1.0)
    assert not np.array_equal(steered, plain) and not np.array_equal(steered, other)
    assert np.abs(run(env, weight=0.0).astype(int) - plain.astype(int)).max() <= 1


def test_plus_reads_the_encoders_hidden_states(env):
    from pathlib import Path

    adapter = ip_adapter.load(Path(env["models"] / "ControlNet" / "ip-adapter-plus_tiny.safetensors"))
    assert adapter.plus and adapter.reads == 32  # the tiny encoder's hidden size (its projection is 16)
    plus = run(env, model="ip-adapter-plus_tiny", weight=1.0)
    assert not np.array_equal(plus, run(env, weight=0.0)) and not np.array_equal(plus, run(env, weight=1.0))


def test_full_face_reads_hidden_states_too(tmp_path):
    full_face = {"image_proj.proj.0.weight": torch.zeros(64, 32), "image_proj.proj.2.weight": torch.zeros(32, 64),
                 "image_proj.proj.3.weight": torch.ones(32), "ip_adapter.1.to_k_ip.weight": torch.zeros(32, 32)}
    save_file(full_face, str(tmp_path / "ip-adapter-full-face.safetensors"))
    adapter = ip_adapter.load(tmp_path / "ip-adapter-full-face.safetensors")
    assert adapter.plus and adapter.reads == 32 and adapter.cross_attention_dim == 32


def test_the_cached_unet_is_given_back_unchanged(env):
    run(env, weight=1.0)
    unet = load_base(env["base"]).unet
    assert unet.encoder_hid_proj is None and unet.config.encoder_hid_dim_type is None
    assert not any(hasattr(p, "to_k_ip") for p in unet.attn_processors.values())


def test_without_an_image_encoder_the_error_says_where_to_put_one(env, tmp_path, monkeypatch):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(env["models"] / "ControlNet", models / "ControlNet")
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(models))
    with pytest.raises(MissingWeightsError, match="clip_vision"):
        run(env, weight=1.0)


def test_what_it_cannot_do_is_refused(env, tmp_path):
    with pytest.raises(ParameterError, match="Balanced control mode"):
        run(env, mode="ControlNet is more important")
    sdxl = str(build_tiny_base(tmp_path / "sdxl", sdxl=True))
    with pytest.raises(ParameterError, match="pick the IP-Adapter made for this base model"):
        kekong.generate(prompt="x", model=sdxl, steps=2, width=64, height=64,
                        controls=[{"module": "ip-adapter_clip_sdxl", "model": "ip-adapter_tiny",
                                   "image": env["images"][0]}])
    face_id = {"image_proj.perceiver_resampler.proj_in.weight": torch.zeros(2, 2)}
    save_file(face_id, str(tmp_path / "faceid.safetensors"))
    with pytest.raises(KekongError, match="insightface"):
        ip_adapter.load(tmp_path / "faceid.safetensors")
    with pytest.raises(ParameterError, match="insightface"):
        kekong.generate(prompt="x", controls=[{"module": "ip-adapter_face_id", "image": env["images"][0]}])

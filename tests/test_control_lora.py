"""Control-LoRA: a ControlNet stored as low-rank deltas over the base UNet, built for the base it
runs with (Stability AI's format, read through diffusers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import kekong
from kekong.errors import KekongError
from kekong.io import save_image
from kekong.models import control_lora
from kekong.models.load import load_base
from tests.tiny_models import build_tiny_base, build_tiny_control_lora


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("control-lora")
    outline = np.zeros((64, 64, 3), np.uint8)
    outline[16:48, 16:48] = 255
    return {"sdxl": str(build_tiny_base(root / "sdxl", sdxl=True)), "sd15": str(build_tiny_base(root / "sd15")),
            "lora": str(build_tiny_control_lora(root / "control-lora-canny-rank4.safetensors")),
            "map": str(save_image(outline, root / "map.png"))}


def generate(setup, weight=1.0, model="sdxl"):
    return kekong.generate(prompt="a box", model=setup[model], steps=3, sampler="Euler", width=64, height=64, seed=6,
                           controls=[{"module": "none", "image": setup["map"], "model": setup["lora"],
                                      "weight": weight}])[0]


def test_it_is_built_from_the_base_unet_plus_the_low_rank_deltas(setup):
    base = load_base(setup["sdxl"])
    built = control_lora.load(base, Path(setup["lora"]))
    state = load_file(setup["lora"])
    delta = (state["input_blocks.0.0.up"].flatten(1) @ state["input_blocks.0.0.down"].flatten(1)).reshape(
        base.unet.conv_in.weight.shape)
    with torch.no_grad():
        built.fuse_lora()
        try:
            assert torch.allclose(built.conv_in.base_layer.weight, base.unet.conv_in.weight + delta, atol=1e-5)
        finally:
            built.unfuse_lora()


def test_a_control_lora_unit_steers_the_image(setup):
    generated = generate(setup)
    assert generated.units[0].model_name == "control-lora-canny-rank4"
    assert not np.array_equal(generated.image, generate(setup, weight=0.0).image)


def test_one_made_for_another_base_is_refused(setup):
    with pytest.raises(KekongError, match="does not fit the base model"):
        generate(setup, model="sd15")


def test_hint_block_widths_are_read_from_the_file(setup):
    assert control_lora.hint_channels(load_file(setup["lora"])) == (16, 16, 32, 32)

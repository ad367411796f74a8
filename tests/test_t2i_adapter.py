"""T2I-Adapters (diffusers format) run as control units beside ControlNets: their features go into
the UNet's down blocks, with the unit's weight, window and region; one built for another base is
refused, and original-format files are named with how to convert them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from kekong.errors import KekongError
from kekong.generation.pipeline import generate
from kekong.io import save_image
from kekong.request import build_request
from tests.tiny_models import build_tiny_base


def tiny_adapter(channels: list[int], folder):
    from diffusers import T2IAdapter

    torch.manual_seed(2)
    adapter = T2IAdapter(in_channels=3, channels=channels, num_res_blocks=1, downscale_factor=8,
                         adapter_type="full_adapter")
    with torch.no_grad():
        for param in adapter.parameters():
            param.mul_(20)  # strong enough to see in two steps
    adapter.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i")
    build_tiny_base(root / "base")
    tiny_adapter([32, 64], root / "adapter")  # the tiny UNet's block widths
    tiny_adapter([48, 96], root / "other")
    colours = np.zeros((64, 64, 3), np.uint8)
    colours[:, 32:] = (255, 40, 0)
    save_image(colours, root / "colours.png")
    return root


def image(models, **unit):
    controls = [{"module": "t2ia_color_grid", "image": str(models / "colours.png"), "model": str(models / "adapter"),
                 **unit}] if unit.get("weight", 1) is not None else []
    return generate(build_request(prompt="x", model=str(models / "base"), width=64, height=64, steps=2, seed=4,
                                  controls=controls))[0].image


def test_an_adapter_unit_steers_the_image_by_its_weight_and_window(models):
    plain = image(models, weight=None)
    steered = image(models)
    assert not np.array_equal(plain, steered)
    assert np.array_equal(image(models, weight=0.0), plain)
    late = image(models, start=0.5)
    assert not np.array_equal(late, steered) and not np.array_equal(late, plain)


def test_an_adapter_for_another_base_is_refused_naming_both(models):
    with pytest.raises(KekongError, match=r"T2I-Adapter other is for SD 1\.5 .* but the base model base"):
        image(models, model=str(models / "other"))


def test_original_format_adapter_files_say_how_to_convert(models, tmp_path):
    save_file({"body.0.in_conv.weight": torch.zeros(2, 2), "body.0.body.0.block1.weight": torch.zeros(2, 2)},
              tmp_path / "t2iadapter_color_sd14v1.safetensors")
    with pytest.raises(KekongError, match="convert_original_t2i_adapter"):
        image(models, model=str(tmp_path / "t2iadapter_color_sd14v1.safetensors"))

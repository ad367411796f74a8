"""ControlNet Union: one model, a control-type switch per unit — from the unit's detector, or its
`union_type` for a ready map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import kekong
from kekong.errors import KekongError, ParameterError
from kekong.io import save_image
from kekong.models.load import load_controlnet
from kekong.models.union import TYPES, parse
from tests.tiny_models import build_tiny_base, build_tiny_union


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("union")
    outline = np.zeros((64, 64, 3), np.uint8)
    outline[20:44, 20:44] = 255
    return {"base": str(build_tiny_base(root / "sdxl", sdxl=True)), "union": str(build_tiny_union(root / "union")),
            "six": str(build_tiny_union(root / "union6", control_types=6)),
            "map": str(save_image(outline, root / "map.png"))}


def run(models, **unit):
    return kekong.generate(prompt="a box", model=models["base"], steps=3, sampler="Euler", width=64, height=64,
                           seed=4, controls=[{"image": models["map"], "model": models["union"], **unit}])[0]


def test_the_control_type_switch_changes_the_image(models):
    canny = run(models, module="none", union_type="Canny")
    depth = run(models, module="none", union_type="Depth")
    assert canny.units[0].union_index == TYPES.index("Canny") and depth.units[0].union_index == TYPES.index("Depth")
    assert not np.array_equal(canny.image, depth.image)
    assert np.array_equal(canny.image, run(models, module="none", union_type="canny/lineart/mlsd").image)


def test_the_type_comes_from_the_detector(models):
    generated = run(models, module="canny")
    assert generated.units[0].union_index == TYPES.index("Canny")
    assert not np.array_equal(generated.image, run(models, module="canny", weight=0).image)


def test_a_ready_map_needs_its_type(models):
    with pytest.raises(ParameterError, match="set union_type"):
        run(models, module="none")


def test_types_the_model_lacks_are_refused(models):
    with pytest.raises(ParameterError, match="8-type ProMax"):
        kekong.generate(prompt="x", model=models["base"], steps=2, width=64, height=64,
                        controls=[{"image": models["map"], "model": models["six"], "module": "none",
                                   "union_type": "Tile"}])
    with pytest.raises(ParameterError, match="unknown union control type"):
        parse("sketchy")


def test_a_union_file_without_its_config_says_what_to_give(tmp_path):
    save_file({"task_embedding": torch.zeros(8, 32), "control_add_embedding.linear_1.weight": torch.zeros(2, 2)},
              str(tmp_path / "promax.safetensors"))
    with pytest.raises(KekongError, match=r"needs its config\.json"):
        load_controlnet(str(tmp_path / "promax.safetensors"))

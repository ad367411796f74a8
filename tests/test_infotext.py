"""A1111 infotext: written as A1111 + sd-webui-controlnet write it, read back (older forms too);
the JSON recipe replays the same image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from kekong.generation.pipeline import generate
from kekong.io import save_image
from kekong.provenance.infotext import parse_controlnet, parse_infotext
from kekong.provenance.replay import load_recipe, replay
from kekong.provenance.stamp import read_png_text, stamp
from kekong.request import build_request
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("made")
    build_tiny_base(root / "base")
    build_tiny_controlnet(root / "cn")
    photo = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    save_image(photo, root / "photo.png")
    req = build_request(prompt="a red star, (bold:1.2)", negative_prompt="blurry", model=str(root / "base"),
                        width=64, height=64, steps=3, seed=42, sampler="DPM++ 2M Karras", cfg_scale=6.5,
                        batch_size=2, controls=[{"module": "canny", "image": str(root / "photo.png"),
                                                 "model": str(root / "cn"), "weight": 0.8, "end": 0.9,
                                                 "params": {"low_threshold": 50}}])
    results = generate(req)
    paths = [stamp(g, root / f"out{i}.png", recipe_sidecar=True) for i, g in enumerate(results)]
    return root, results, paths


def test_png_parameters_parse_back_into_the_same_parameters(made):
    _, _results, paths = made
    prompt, negative, params = parse_infotext(read_png_text(paths[1])["parameters"])
    assert (prompt, negative) == ("a red star, (bold:1.2)", "blurry")
    assert params["Steps"] == "3" and params["Sampler"] == "DPM++ 2M" and params["Schedule type"] == "Karras"
    assert params["CFG scale"] == "6.5" and params["Seed"] == "43" and params["Size"] == "64x64"
    assert params["Model"] == "base" and len(params["Model hash"]) == 10
    assert params["Batch size"] == "2" and params["Batch pos"] == "1"
    [unit] = parse_controlnet(params)
    assert unit["Module"] == "canny" and unit["Model"].startswith("cn [")
    assert unit["Weight"] == "0.8" and unit["Guidance End"] == "0.9" and unit["Threshold A"] == "50.0"
    assert unit["Control Mode"] == "Balanced" and unit["Resize Mode"] == "Crop and Resize"


def test_the_parameters_line_is_a1111s_format(made):
    text = read_png_text(made[2][0])["parameters"]
    lines = text.split("\n")
    assert lines[1] == "Negative prompt: blurry"
    assert lines[2].startswith("Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 42, "
                               "Size: 64x64, Model hash: ")
    assert ', ControlNet 0: "Module: canny, Model: cn [' in lines[2]


def test_older_infotext_forms_are_read():
    _, _, params = parse_infotext("cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x512, "
                                  'ControlNet: "preprocessor: canny, model: control_sd15_canny [fef5e48e], '
                                  "weight: 1, starting/ending: (0, 0.5), resize mode: Crop and Resize, "
                                  'pixel perfect: False, control mode: Balanced, preprocessor params: (512, 100, 200)"')
    assert params["Sampler"] == "DPM++ 2M" and params["Schedule type"] == "Karras"
    [unit] = parse_controlnet(params)
    assert unit["Module"] == "canny" and unit["Guidance End"] == "0.5" and unit["Threshold B"] == "200"
    _, _, params = parse_infotext("cat\nSteps: 20, Sampler: Euler a, Seed: 1, ControlNet 0 Enabled: True, "
                                  "ControlNet 0 Module: depth, ControlNet 0 Weight: 0.6")
    assert parse_controlnet(params) == [{"Enabled": "True", "Module": "depth", "Weight": "0.6"}]


def test_recipe_replays_bit_identically(made):
    _, _results, paths = made
    for path in (paths[1], paths[1].with_suffix(".json")):
        generated, warnings = replay(load_recipe(path), folders=[path.parent])  # inputs: beside the recipe
        assert warnings == []
        assert generated.seed == 43 and np.array_equal(generated.image, np.asarray(Image.open(paths[1])))


def test_replay_warns_when_the_environment_differs_and_refuses_changed_inputs(made):
    recipe = load_recipe(made[2][0])
    recipe["environment"]["threads"] = 999
    _, warnings = replay(recipe, folders=[made[0]])
    assert any("threads" in w for w in warnings)
    [control] = [i for i in recipe["inputs"] if i["field"] == "controls.0.image"]
    control["sha256"] = "0" * 64
    with pytest.raises(Exception, match="not the file the recipe was made from"):
        replay(recipe, folders=[made[0]])


def test_recipe_is_complete_json(made):
    recipe = json.loads(made[2][0].with_suffix(".json").read_text())
    assert recipe["request"]["controls"][0]["params"] == {"low_threshold": 50, "high_threshold": 200}
    assert set(recipe["environment"]) >= {"torch", "threads", "cpu"}
    assert len(recipe["models"]["base"]["sha256"]) == 64

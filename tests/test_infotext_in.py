"""A1111 infotext as input: the `parameters` text A1111 or kekong wrote becomes a request; what it
cannot carry (images) or names but this machine lacks (a model) is asked for by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import kekong
from kekong.errors import ParameterError
from kekong.io import save_image
from kekong.provenance.infotext_request import infotext_fields, request_from_infotext
from kekong.provenance.stamp import describe
from tests.server_helpers import star_outline
from tests.test_cli import kekong as run_cli

A1111_110 = """a red star on a light blue background
Negative prompt: blurry, text
Steps: 4, Sampler: DPM++ 2M Karras, CFG scale: 2, Seed: 11, Size: 64x64, Model hash: 0123456789, \
Model: kekong-shapes, Variation seed: 77, Variation seed strength: 0.3, Emphasis: Original, \
ControlNet 0: "Module: none, Model: kekong-shapes-outline [00000000], Weight: 1.0, Resize Mode: Crop and Resize, \
Processor Res: 512, Threshold A: -1.0, Threshold B: -1.0, Guidance Start: 0.0, Guidance End: 1.0, \
Pixel Perfect: False, Control Mode: Balanced", Version: v1.10.0"""


@pytest.fixture(scope="module")
def outline(tmp_path_factory):
    path = tmp_path_factory.mktemp("infotext") / "outline.png"
    save_image(star_outline(), path)
    return str(path)


def test_an_a1111_infotext_becomes_a_request(outline):
    request, warnings = request_from_infotext(A1111_110, control_images=[outline])
    assert (request.prompt, request.negative_prompt) == ("a red star on a light blue background", "blurry, text")
    assert (request.steps, request.cfg_scale, request.seed, request.width, request.height) == (4, 2.0, 11, 64, 64)
    assert (request.sampler, request.scheduler) == ("DPM++ 2M", "Karras")  # a pre-1.8 combined name split
    assert (request.subseed, request.subseed_strength) == (77, 0.3)
    assert request.rng.value == "GPU"  # no RNG key: A1111's default
    assert request.model == "kekong-shapes"
    [unit] = request.controls
    assert (unit.module, unit.model, unit.image) == ("none", "kekong-shapes-outline", outline)
    assert any("Emphasis: Original" in w for w in warnings)  # named, not silently dropped
    assert any("found by name" in w and "0123456789" in w for w in warnings)  # the hash is not this model's


def test_kekong_infotext_round_trips_to_the_same_image(outline):
    [made] = kekong.generate(prompt="a blue heart on a yellow background", width=64, height=64, steps=3, seed=4,
                             cfg_scale=3, sampler="Euler", scheduler="Karras", subseed=9, subseed_strength=0.2,
                             controls=[{"module": "canny", "image": outline, "weight": 0.8, "end": 0.7,
                                        "params": {"low_threshold": 90, "high_threshold": 180}}])
    infotext, _ = describe(made)
    request, _ = request_from_infotext(infotext, control_images=[outline])
    carried = ("prompt", "negative_prompt", "steps", "cfg_scale", "sampler", "scheduler", "seed", "width", "height",
               "subseed", "subseed_strength", "rng")
    assert {name: getattr(request, name) for name in carried} == {name: getattr(made.request, name)
                                                                  for name in carried}
    assert request.model == made.base.name  # the default model, named
    unit, original = request.controls[0], made.request.controls[0]
    assert unit.model_dump(exclude={"model"}) == original.model_dump(exclude={"model"})
    [again] = kekong.generate(request)
    assert np.array_equal(again.image, made.image)


def test_what_the_text_lacks_is_asked_for_by_name(outline):
    missing_model = A1111_110.replace("Model: kekong-shapes,", "Model: dreamshaper_8,")
    with pytest.raises(ParameterError, match=r"base model dreamshaper_8 \[0123456789\] is not in the models folder"):
        request_from_infotext(missing_model, control_images=[outline])
    assert request_from_infotext(missing_model, {"model": "kekong-shapes"}, [outline])[0].model == "kekong-shapes"
    with pytest.raises(ParameterError, match=r"ControlNet 0 \(none\) needs its control image"):
        request_from_infotext(A1111_110)
    img2img = A1111_110.replace("Seed: 11,", "Seed: 11, Denoising strength: 0.6,")
    with pytest.raises(ParameterError, match=r"made with img2img.*pass its init image"):
        request_from_infotext(img2img, control_images=[outline])
    assert request_from_infotext(img2img, {"init_image": outline})[0].init_image == outline  # units use it
    with pytest.raises(ParameterError, match="no `Steps"):
        infotext_fields("just a prompt")
    with pytest.raises(ParameterError, match="Size: 'big' is not WIDTHxHEIGHT"):
        infotext_fields("x\nSteps: 4, Sampler: Euler, Size: big")


def test_replay_takes_an_image_with_only_a1111_parameters(outline, tmp_path):
    info = PngInfo()
    info.add_text("parameters", A1111_110)
    Image.new("RGB", (64, 64)).save(tmp_path / "a1111.png", pnginfo=info)
    out = tmp_path / "again.png"
    done = run_cli("replay", str(tmp_path / "a1111.png"), "-o", str(out), "--control-image", outline)
    assert done.returncode == 0, done.stderr
    assert "from A1111 parameters" in done.stdout and "Emphasis" in done.stderr
    assert "Seed: 11" in Image.open(out).text["parameters"]
    refused = run_cli("replay", str(out), "-o", str(tmp_path / "x.png"), "--model", "kekong-shapes")
    assert refused.returncode != 0 and "a kekong recipe names its own inputs" in refused.stderr

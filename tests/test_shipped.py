"""The shipped kekong-shapes model: the default model, offline, a few seconds on CPU — and it
meets its controllability benchmark on a 30-condition subset."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kekong
from kekong.errors import ParameterError
from kekong.io import save_image
from kekong.train.bench import run_bench, score
from kekong.train.shapes import random_sample


@pytest.fixture(scope="module")
def outline(tmp_path_factory):
    sample = random_sample(np.random.default_rng(2024), 64)
    path = save_image(sample.outline, tmp_path_factory.mktemp("shipped") / "outline.png")
    return sample, str(path)


def test_default_model_follows_an_outline(outline):
    sample, path = outline
    results = kekong.generate(prompt=sample.prompt, seed=0, batch_count=4,
                              controls=[{"module": "none", "image": path}])
    generated = results[0]
    assert generated.base.name == "kekong-shapes" and generated.image.shape == (64, 64, 3)
    assert generated.units[0].model_name == "kekong-shapes-outline"
    scores = [score(g.image, sample) for g in results]
    assert np.mean([s["iou"] for s in scores]) > 0.5  # single images vary; see the benchmark
    assert np.mean([s["background_colour"] for s in scores]) >= 0.75


def test_a_sketch_on_paper_goes_through_the_scribble_detector(tmp_path):
    from kekong.demo import hand_sketch

    sketch = save_image(hand_sketch(), tmp_path / "sketch.png")
    [generated] = kekong.generate(prompt="a red star on a light blue background",
                                  controls=[{"module": "scribble", "image": str(sketch)}])
    assert generated.image.shape == (64, 64, 3)


@pytest.mark.parametrize(("fields", "message"), [
    ({"clip_skip": 2}, "clip skip applies to CLIP text encoders"),
    ({"prompt": "a (red:1.3) star"}, "need a CLIP encoder"),
])
def test_clip_only_options_are_refused(fields, message):
    with pytest.raises(ParameterError, match=message):
        kekong.generate(**{"prompt": "a red star on a white background", **fields})


def test_its_prompt_window_holds_every_shapes_prompt_and_refuses_a_longer_one():
    from kekong.train.base import MAX_TOKENS, load_text_encoder

    _, tokenizer = load_text_encoder()
    rng = np.random.default_rng(0)
    longest = max(len(tokenizer(random_sample(rng, 64).prompt).input_ids) for _ in range(2000))
    assert longest <= MAX_TOKENS
    too_long = "a red star on a light blue background with a thin dark border and soft grey shadows, centred"
    with pytest.raises(ParameterError, match=rf"the prompt is \d+ tokens; .* reads at most {MAX_TOKENS}"):
        kekong.generate(prompt=too_long)


def test_benchmark_subset():
    # The goals: IoU ≥ 0.85 with the ControlNet, ≤ 0.3 without; colour accuracy ≥ 0.8.
    # Measured on 200 conditions at the bench's CFG 2 (BENCHMARKS.md): 0.855 / 0.278 / 0.855, all
    # met. On this 30-condition subset: 0.854 / 0.275 / 0.883. Chance and colour are held to the
    # goals; the IoU bound sits 0.01 under its goal (the subset clears it by 0.004) as a margin for
    # float sums that differ between CPUs.
    result = run_bench(None, None, count=30)
    with_control, without = result["rows"]
    assert with_control["iou"] >= 0.84 and without["iou"] <= 0.3
    assert with_control["colour_accuracy"] >= 0.8


def test_bench_cli_takes_the_controlnet_weight_and_cfg_and_can_skip_the_baseline():
    from kekong.train.bench import VALIDATION_SEED
    from tests.test_cli import kekong as run_kekong

    done = run_kekong("bench", "control", "--count", "2", "--weight", "1.5", "--cfg", "3", "--no-baseline",
                      "--validation", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["weight"], result["cfg"], [row["name"] for row in result["rows"]]) == (1.5, 3.0, ["controlnet"])
    assert result["seed"] == VALIDATION_SEED  # settings are tuned off the bench's own conditions
    refused = run_kekong("bench", "control", "--weight", "2.5")
    assert refused.returncode != 0 and "Invalid value for '--weight'" in refused.stderr


def test_installed_configs_do_not_name_the_training_machines_paths(tmp_path):
    from kekong.train.shipped import SHIPPED_DIR, forget_source

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"_class_name": "UNet2DConditionModel", "_name_or_path": "/work/runs/unet"}))
    forget_source(config)
    assert json.loads(config.read_text()) == {"_class_name": "UNet2DConditionModel"}
    for shipped in SHIPPED_DIR.glob("*/**/config.json"):
        assert not json.loads(shipped.read_text()).get("_name_or_path", "").startswith("/"), shipped


def test_the_shipped_strength_is_folded_into_the_controlnets_output_convolutions(tmp_path):
    # install() scales the residuals, so the shipped ControlNet at weight 1 is the trained one at
    # CONTROL_STRENGTH: the same as diffusers' conditioning_scale on every residual.
    import torch
    from diffusers import ControlNetModel

    from kekong.train.shipped import scale_residuals
    from tests.tiny_models import build_tiny_controlnet

    folder = build_tiny_controlnet(tmp_path / "cn")
    trained = ControlNetModel.from_pretrained(folder).eval()
    scaled = scale_residuals(ControlNetModel.from_pretrained(folder).eval(), 1.3)
    torch.manual_seed(0)
    inputs = dict(sample=torch.randn(1, 4, 8, 8), timestep=torch.tensor([500]),
                  encoder_hidden_states=torch.randn(1, 4, trained.config.cross_attention_dim),
                  controlnet_cond=torch.rand(1, 3, 64, 64), return_dict=False)
    with torch.no_grad():
        plain_down, plain_mid = trained(**inputs)
        want_down, want_mid = trained(**inputs, conditioning_scale=1.3)
        got_down, got_mid = scaled(**inputs)
    for want, got in zip([*want_down, want_mid], [*got_down, got_mid], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got_mid, plain_mid) and not torch.allclose(got_down[0], plain_down[0])

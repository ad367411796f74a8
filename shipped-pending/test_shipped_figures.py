"""The shipped pose model, kekong-figures + kekong-figures-openpose: a pose map becomes a figure in
that pose, the prompt's clothes and background follow, and the ControlNet is what places it."""

from __future__ import annotations

import numpy as np
import pytest

import kekong
from kekong.errors import ParameterError
from kekong.io import save_image
from kekong.train.pose_bench import held_out, run_bench, score


@pytest.fixture(scope="module")
def pose_map(tmp_path_factory):
    sample = held_out(1, 64, seed=77)[0]
    return sample, str(save_image(sample.control, tmp_path_factory.mktemp("figures") / "pose.png"))


def test_the_figures_base_reads_pose_maps_with_its_own_controlnet(pose_map):
    sample, path = pose_map
    [generated] = kekong.generate(prompt=sample.prompt, model="kekong-figures", seed=0,
                                  controls=[{"module": "none", "image": path}])
    assert generated.base.name == "kekong-figures" and generated.image.shape == (64, 64, 3)
    assert generated.units[0].model_name == "kekong-figures-openpose"
    assert generated.request.cfg_scale == 2.0  # the model's recommendation


def test_the_controlnet_places_the_figure(pose_map):
    sample, path = pose_map
    with_control = kekong.generate(prompt=sample.prompt, model="kekong-figures", seed=0, batch_count=3,
                                   controls=[{"module": "none", "image": path}])
    without = kekong.generate(prompt=sample.prompt, model="kekong-figures", seed=0, batch_count=3)
    followed = np.mean([score(g.image, sample)["limbs"] for g in with_control])
    ignored = np.mean([score(g.image, sample)["limbs"] for g in without])
    assert followed > ignored + 0.1


def test_its_prompt_window_holds_three_people_and_refuses_longer():
    from kekong.train.base import load_text_encoder
    from kekong.train.figures import random_sample
    from kekong.train.shipped_figures import MAX_TOKENS

    _, tokenizer = load_text_encoder(MAX_TOKENS)
    rng = np.random.default_rng(0)
    longest = max(len(tokenizer(random_sample(rng, 64, detected=0.0).prompt).input_ids) for _ in range(300))
    assert longest <= MAX_TOKENS
    with pytest.raises(ParameterError, match=rf"reads at most {MAX_TOKENS}"):
        kekong.generate(prompt="a person in a red shirt " * 12, model="kekong-figures")


def test_benchmark_subset():
    # Measured on 200 held-out skeletons in BENCHMARKS.md; this 16-sample subset is held to the
    # separation between the ControlNet and the base alone, with margins for CPU float differences.
    result = run_bench("kekong-figures", None, count=16, detected=0)
    with_control, without = result["rows"]
    assert with_control["iou"] >= without["iou"] + 0.1
    assert with_control["limbs"] >= without["limbs"] + 0.15

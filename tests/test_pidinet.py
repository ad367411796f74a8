"""PiDiNet soft edges (softedge_pidinet, softedge_pidisafe, scribble_pidinet): the pixel-difference
convolutions behave as the paper defines them, and the network loads the annotator checkpoint's
layout (wrapped in `state_dict`, `module.` prefixes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned.pidinet import PiDiNet, pixel_difference
from kekong.errors import MissingWeightsError


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.mark.parametrize("kind", ["cd", "ad", "rd"])
def test_difference_convolutions_see_nothing_in_a_flat_image(kind):
    torch.manual_seed(0)
    weight = torch.randn(4, 3, 3, 3)
    flat = torch.full((1, 3, 16, 16), 0.7)
    inner = pixel_difference(kind, flat, weight)[:, :, 3:-3, 3:-3]  # away from the zero padding
    assert torch.allclose(inner, torch.zeros_like(inner), atol=1e-5)
    step = torch.zeros(1, 3, 16, 16)
    step[..., 8:] = 1.0
    assert pixel_difference(kind, step, weight).abs().amax() > 0.1  # an edge is seen


def test_central_difference_is_the_convolution_minus_the_centre_times_the_sum():
    torch.manual_seed(1)
    weight, x = torch.randn(2, 1, 3, 3), torch.randn(1, 1, 8, 8)
    expected = torch.nn.functional.conv2d(x, weight, padding=1) - x * weight.sum(dim=(2, 3)).view(1, 2, 1, 1)
    assert torch.allclose(pixel_difference("cd", x, weight), expected, atol=1e-5)


def test_the_annotator_checkpoint_layout_loads_and_runs(tmp_path, astronaut):
    torch.manual_seed(0)
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True)
    state = {f"module.{k}": v for k, v in PiDiNet().state_dict().items()}
    torch.save({"epoch": 1, "state_dict": state}, folder / "table5_pidinet.pth")
    soft = run("softedge_pidinet", astronaut, res=128).image
    assert soft.shape == (128, 128, 3) and soft.dtype == np.uint8 and soft.std() > 0
    safe = run("softedge_pidisafe", astronaut, res=128).image
    assert len(np.unique(safe)) <= 3  # quantised: 0, 127, 255
    scribble = run("scribble_pidinet", astronaut, res=128).image
    assert set(np.unique(scribble)) <= {0, 255}


def test_without_weights_the_error_names_the_file_and_the_stand_in(astronaut):
    with pytest.raises(MissingWeightsError, match=r"table5_pidinet\.pth.*softedge_dog"):
        run("softedge_pidinet", astronaut)

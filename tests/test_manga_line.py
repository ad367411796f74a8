"""Manga line extraction (lineart_anime_denoise): the res-skip network has erika.pth's keys and shapes, it sees
the picture in grey as 0..255, and the map is 255 minus what it draws (white lines on black), clipped."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned import NETWORKS
from kekong.detect.learned.manga_line import ResSkip
from kekong.errors import KekongError, MissingWeightsError

WIDE = np.random.default_rng(7).integers(0, 256, (64, 128, 3), dtype=np.uint8)  # multiples of 64: no padding


@pytest.fixture(autouse=True)
def tiny_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setitem(NETWORKS, "erika.pth", lambda: ResSkip(width=4))  # the full one takes seconds per map


def _save(tmp_path, state: dict) -> None:
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{k}": v for k, v in state.items()}, folder / "erika.pth")  # as the file is: DataParallel's


def _tiny(seed: int = 0) -> ResSkip:
    torch.manual_seed(seed)
    return ResSkip(width=4).eval()


def test_the_full_size_network_has_erikas_keys_and_shapes():
    net = ResSkip()
    assert sum(p.numel() for p in net.parameters()) == 43_100_147  # erika.pth's 172 MB in float32
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    assert shapes["block0.model.0.conv1.model.0.running_var"] == (1,)  # batch norm on the grey input
    assert shapes["block0.model.0.conv1.model.2.weight"] == (24, 1, 3, 3)
    assert shapes["block0.model.0.shortcut.model.0.weight"] == (24, 1, 1, 1)
    assert shapes["block1.model.2.shortcut.model.0.weight"] == (48, 48, 1, 1)  # the strided last block
    assert shapes["block4.model.11.residual.model.2.weight"] == (384, 384, 3, 3)
    assert shapes["block5.model.0.conv1.model.2.weight"] == (192, 384, 3, 3)
    assert shapes["block5.model.0.shortcut.model.0.weight"] == (192, 384, 1, 1)
    assert shapes["block9.model.0.conv1.model.2.weight"] == (16, 24, 3, 3) and shapes["conv15.model.2.weight"] == (
        1, 16, 1, 1)
    assert not any(k.startswith(("res1.", "block0.model.1.shortcut.")) for k in shapes)  # identity shortcuts


def test_the_map_is_255_minus_the_networks_drawing_of_the_grey_picture(tmp_path):
    net = _tiny()
    _save(tmp_path, net.state_dict())
    grey = cv2.cvtColor(WIDE, cv2.COLOR_RGB2GRAY).astype(np.float32)
    with torch.inference_mode():
        paper = net(torch.from_numpy(grey)[None, None])[0, 0].numpy()
    lines = run("lineart_anime_denoise", WIDE, res=64).image
    assert lines.shape == (64, 128, 3) and lines.dtype == np.uint8
    assert np.array_equal(lines[:, :, 0], (255 - paper).clip(0, 255).astype(np.uint8))
    same_grey = np.repeat(cv2.cvtColor(WIDE, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    assert np.array_equal(run("lineart_anime_denoise", same_grey, res=64).image, lines)  # colour is not seen


@pytest.mark.parametrize(("paper", "expected"), [(200.0, 55), (300.0, 0), (-40.0, 255)])
def test_a_network_drawing_flat_paper_gives_its_inverse_clipped(tmp_path, paper, expected):
    net = _tiny()
    with torch.no_grad():
        net.conv15.model[2].weight.zero_()
        net.conv15.model[2].bias.fill_(paper)
    _save(tmp_path, net.state_dict())
    lines = run("lineart_anime_denoise", np.full((64, 96, 3), 90, np.uint8), res=64).image
    assert lines.shape == (64, 96, 3) and (lines == expected).all()


def test_a_file_that_does_not_fit_is_refused_naming_it(tmp_path):
    state = _tiny().state_dict()
    state["conv15.model.3.weight"] = state.pop("conv15.model.2.weight")
    _save(tmp_path, state)
    with pytest.raises(KekongError, match=r"erika\.pth: does not fit .*missing: conv15\.model\.2\.weight"):
        run("lineart_anime_denoise", WIDE, res=64)


def test_without_weights_the_error_names_the_file_the_repo_and_the_stand_in():
    with pytest.raises(MissingWeightsError, match=r"erika\.pth.*lllyasviel/Annotators.*lineart_standard"):
        run("lineart_anime_denoise", WIDE, res=64)

"""Learned hires upscalers: ESRGAN-family RRDBNets from A1111's models/ESRGAN, in both key layouts,
tiled, and used by hires fix by their A1111 name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kekong
from kekong.errors import KekongError, ParameterError
from kekong.models import esrgan
from tests.tiny_models import build_tiny_base


def tiny_rrdbnet() -> esrgan.RRDBNet:
    torch.manual_seed(0)
    return esrgan.RRDBNet(channels=3, features=8, blocks=2, growth=4).eval()


def old_layout(model: esrgan.RRDBNet) -> dict:
    """The same weights under the original ESRGAN names (model.0, model.1.sub.N.RDBK.convM.0, …)."""
    names = {"conv_first": "model.0", "conv_up1": "model.3", "conv_up2": "model.6", "conv_hr": "model.8",
             "conv_last": "model.10", "conv_body": "model.1.sub.2"}
    state = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "body":
            state[f"model.1.sub.{parts[1]}.RDB{parts[2][-1]}.{parts[3]}.0.{parts[4]}"] = value
        else:
            state[f"{names[parts[0]]}.{parts[1]}"] = value
    return state


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path))
    esrgan.load.cache_clear()
    (tmp_path / "ESRGAN").mkdir()
    return tmp_path


def test_both_key_layouts_load_the_same_network(models_dir):
    model = tiny_rrdbnet()
    torch.save({"params_ema": model.state_dict()}, models_dir / "ESRGAN" / "new.pth")
    torch.save(old_layout(model), models_dir / "ESRGAN" / "old.pth")
    image = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    new, old = (esrgan.upscale(esrgan.load(esrgan.find(name)), image) for name in ("new", "old"))
    assert new.shape == (80, 96, 3) and np.array_equal(new, old)
    assert esrgan.available() == ["new", "old"]


def test_tiles_match_one_pass(models_dir):
    model = tiny_rrdbnet()
    image = np.random.default_rng(1).integers(0, 255, (40, 52, 3), dtype=np.uint8)
    whole = esrgan.upscale(model, image, tile=512)
    tiled = esrgan.upscale(model, image, tile=24, overlap=8)
    # the receptive field is wider than the overlap, so tile seams differ a little, as in A1111
    assert tiled.shape == whole.shape and np.abs(whole.astype(int) - tiled.astype(int)).mean() < 3


def test_a_file_that_is_not_an_rrdbnet_is_refused(models_dir):
    torch.save({"model.0.weight": torch.zeros(2, 2)}, models_dir / "ESRGAN" / "odd.pth")
    with pytest.raises(KekongError, match="ESRGAN"):
        esrgan.load(esrgan.find("odd"))


def test_hires_fix_with_a_learned_upscaler(models_dir, tmp_path):
    torch.save(tiny_rrdbnet().state_dict(), models_dir / "ESRGAN" / "4x-Tiny.pth")
    base = str(build_tiny_base(tmp_path / "base"))
    [generated] = kekong.generate(prompt="a tower", model=base, width=64, height=64, steps=2, enable_hr=True,
                                  hr_scale=1.5, hr_upscaler="4x-Tiny", denoising_strength=0.5, seed=1)
    assert generated.image.shape == (96, 96, 3)
    with pytest.raises(ParameterError, match="4x-Tiny"):  # the error lists what is there
        kekong.generate(prompt="x", model=base, width=64, height=64, enable_hr=True, hr_upscaler="4x-Missing")


def test_each_x4_step_is_bounded_before_it_runs():
    """Upscaling to a size goes ×4 at a time (A1111's way); a step whose result would pass the
    pixel cap is refused before the network runs (no model is needed to see that)."""
    import numpy as np
    import pytest

    from kekong.errors import ParameterError
    from kekong.models.esrgan import upscale_to

    small = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ParameterError, match="steps of ×4: the step from 100x100 would pass 150,000 pixels"):
        upscale_to(None, small, (200, 200), max_pixels=150_000)
    assert upscale_to(None, small, (100, 100), max_pixels=1) is small  # already big enough: no step

"""A1111's refiner: a second model finishes the sampling after `refiner_switch_at` of the steps,
with its own text encoders and micro-conditioning (the SDXL refiner's aesthetic score)."""

from __future__ import annotations

import numpy as np
import pytest

import kekong
from kekong.errors import ParameterError
from kekong.generation.refiner import switch_index
from kekong.models.load import load_base
from kekong.provenance.stamp import describe
from tests.tiny_models import build_tiny_base, build_tiny_refiner


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("refiner")
    return {"sdxl": str(build_tiny_base(root / "sdxl", sdxl=True)), "refiner": str(build_tiny_refiner(root / "ref")),
            "sd15": str(build_tiny_base(root / "sd15")), "inpaint": str(build_tiny_base(root / "inp", in_channels=9))}


@pytest.mark.parametrize(("total", "switch_at", "index"), [(20, 0.8, 17), (10, 0.5, 6), (10, 0.0, 1), (10, 1.0, 10)])
def test_switch_point_follows_a1111(total, switch_at, index):
    """A1111 hands over at the first step whose completed fraction exceeds the switch point."""
    assert switch_index(total, switch_at) == index


class Calls:
    """Counts a UNet's forward calls and keeps the micro-conditioning it was given."""

    def __init__(self, unet):
        self.count, self.time_ids = 0, None
        self.handle = unet.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.count += 1
        added = kwargs.get("added_cond_kwargs")
        self.time_ids = added["time_ids"] if added else None


@pytest.fixture
def calls(models):
    watched = {name: Calls(load_base(models[name]).unet) for name in ("sdxl", "refiner")}
    yield watched
    for watch in watched.values():
        watch.handle.remove()


def test_the_refiner_takes_over_at_its_switch_point(models, calls):
    [generated] = kekong.generate(prompt="a house", model=models["sdxl"], refiner=models["refiner"],
                                  refiner_switch_at=0.5, steps=10, sampler="Euler", width=64, height=64, seed=1)
    assert calls["sdxl"].count == 6 and calls["refiner"].count == 4
    uncond, cond = calls["refiner"].time_ids.tolist()  # (h, w, top, left, aesthetic score)
    assert uncond == [64, 64, 0, 0, 2.5] and cond == [64, 64, 0, 0, 6.0]
    infotext, recipe = describe(generated)
    assert "Refiner: ref [" in infotext and "Refiner switch at: 0.5" in infotext
    assert recipe["request"]["refiner"] == "ref" and len(recipe["models"]["refiner"]["sha256"]) == 64  # by name


def test_switch_at_one_never_runs_the_refiner(models, calls):
    kekong.generate(prompt="a house", model=models["sdxl"], refiner=models["refiner"], refiner_switch_at=1.0,
                    steps=6, sampler="Euler", width=64, height=64, seed=1)
    assert calls["sdxl"].count == 6 and calls["refiner"].count == 0


def test_any_model_of_the_same_latent_space_can_refine(models):
    request = {"prompt": "a boat", "model": models["sd15"], "steps": 6, "sampler": "Euler", "width": 64, "height": 64,
               "seed": 2}
    [plain] = kekong.generate(**request)
    [refined] = kekong.generate(**request, refiner=models["sdxl"], refiner_switch_at=0.5)
    assert not np.array_equal(plain.image, refined.image)


def test_an_inpainting_model_cannot_refine(models):
    with pytest.raises(ParameterError, match="inpainting model"):
        kekong.generate(prompt="x", model=models["sd15"], refiner=models["inpaint"], steps=4, width=64, height=64)

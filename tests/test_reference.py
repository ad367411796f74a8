"""Reference-only: no model; each step the UNet's self-attention also reads a reference picture's
features (sd-webui-controlnet's reference_only, style fidelity and layer choice by weight)."""

from __future__ import annotations

import numpy as np
import pytest

import kekong
from kekong.errors import ParameterError
from kekong.io import save_image
from kekong.models.load import load_base
from kekong.provenance.stamp import describe
from tests.tiny_models import build_tiny_base


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    rng = np.random.default_rng(0)
    pictures = [str(save_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), root / f"ref{i}.png"))
                for i in range(2)]
    return {"base": str(build_tiny_base(root / "sd15")), "pictures": pictures}


def run(setup, picture=0, steps=4, **unit):
    controls = [{"module": "reference_only", "image": setup["pictures"][picture], **unit}] if unit is not None else []
    return kekong.generate(prompt="a garden", model=setup["base"], steps=steps, sampler="Euler", width=64, height=64,
                           seed=5, controls=controls)[0]


def plain(setup):
    return kekong.generate(prompt="a garden", model=setup["base"], steps=4, sampler="Euler", width=64, height=64,
                           seed=5)[0].image


def test_the_reference_picture_steers_the_image(setup):
    first, second = run(setup, 0).image, run(setup, 1).image
    assert not np.array_equal(first, plain(setup)) and not np.array_equal(first, second)


def test_outside_its_window_or_at_weight_zero_it_does_nothing(setup):
    nothing = plain(setup)
    assert np.array_equal(run(setup, weight=0.0).image, nothing)  # no layer reads the reference
    assert np.array_equal(run(setup, start=0.0, end=0.2).image, nothing)  # 4 steps: no step inside [0, 0.2]


def test_style_fidelity_changes_the_blend(setup):
    assert not np.array_equal(run(setup, params={"style_fidelity": 0.0}).image,
                              run(setup, params={"style_fidelity": 1.0}).image)


def test_the_unet_is_given_back_and_the_infotext_says_so(setup):
    generated = run(setup)
    assert not any("Reference" in type(p).__name__ for p in load_base(setup["base"]).unet.attn_processors.values())
    assert "Module: reference_only, Model: None" in describe(generated)[0]


def test_what_it_cannot_do_is_refused(setup):
    with pytest.raises(ParameterError, match="reference_adain"):
        run(setup, module="reference_adain")
    with pytest.raises(ParameterError, match="uses no model"):
        run(setup, model="kekong-shapes-outline")
    with pytest.raises(ParameterError, match="one reference_only unit"):
        kekong.generate(prompt="x", model=setup["base"], steps=2, width=64, height=64,
                        controls=[{"module": "reference_only", "image": p} for p in setup["pictures"]])

"""Fast mode (generation/fast.py): off by default, each acceleration switchable and changing the
image by a little, recorded in infotext and recipe; the exact path untouched when it is off."""

from __future__ import annotations

import numpy as np
import pytest

import kekong
from kekong.choices import FastPart
from kekong.errors import ParameterError
from kekong.generation.fast import FastPlan
from kekong.request import GenerationRequest, build_request
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from kekong.io import save_image

    root = tmp_path_factory.mktemp("fast")
    canvas = np.zeros((64, 64, 3), np.uint8)
    canvas[16:48, 20:44] = 255
    control = str(save_image(canvas, root / "map.png"))
    return str(build_tiny_base(root / "base")), str(build_tiny_controlnet(root / "cn")), control


def run(setup, **fields):
    base, controlnet, control = setup
    return kekong.generate(prompt="a lighthouse", model=base, seed=5, steps=9, sampler="Euler", width=64, height=64,
                           controls=[{"module": "none", "image": control, "model": controlnet}], **fields)[0]


def test_fast_mode_is_off_by_default():
    request = GenerationRequest(prompt="x")
    assert request.fast is False and FastPlan.of(request) is None
    assert set(request.fast_parts) == set(FastPart)  # what --fast alone turns on
    with pytest.raises(ParameterError, match="fast_parts"):
        build_request(prompt="x", fast=True, fast_parts=[])


def test_each_part_changes_the_image_a_little_and_off_is_the_exact_path(setup):
    exact = run(setup).image
    assert np.array_equal(run(setup, fast=False, fast_parts=["deep_cache"]).image, exact)  # parts alone do nothing
    images = {}
    for parts in (["deep_cache"], ["control_reuse"], ["deep_cache", "control_reuse"]):
        images[tuple(parts)] = run(setup, fast=True, fast_parts=parts).image
    distinct = [exact, *images.values()]
    for i, a in enumerate(distinct):
        for b in distinct[i + 1:]:
            assert not np.array_equal(a, b)  # each switch has an effect of its own
    for image in images.values():  # … and stays near the exact image (tiny random models: loose bound)
        assert np.abs(image.astype(int) - exact.astype(int)).mean() < 40
    shorter = run(setup, fast=True, fast_interval=3).image
    assert not np.array_equal(shorter, images[("deep_cache", "control_reuse")])


def test_fast_mode_is_recorded_in_infotext_and_recipe(setup):
    from kekong.provenance.infotext_request import infotext_fields
    from kekong.provenance.recipe import build_recipe
    from kekong.provenance.stamp import describe

    generated = run(setup, fast=True, fast_parts=["deep_cache"], fast_interval=3)
    text, _ = describe(generated)
    assert "Fast: deep_cache, Fast interval: 3" in text
    fields = infotext_fields(text).fields
    assert fields["fast"] is True and fields["fast_parts"] == ["deep_cache"] and fields["fast_interval"] == 3
    request = build_recipe(generated)["request"]
    assert request["fast"] is True and request["fast_parts"] == ["deep_cache"] and request["fast_interval"] == 3
    exact_text, _ = describe(run(setup))
    assert "Fast" not in exact_text and build_recipe(run(setup))["request"]["fast"] is False


def test_cli_fast_flags_reach_the_request(setup, tmp_path):
    from typer.testing import CliRunner

    from kekong.cli import app
    from kekong.provenance.stamp import read_png_text

    base, controlnet, control = setup
    out = tmp_path / "fast.png"
    done = CliRunner().invoke(app, ["generate", "a lighthouse", "--model", base, "--control",
                                    f"none:{control},model={controlnet}", "--steps", "4", "-W", "64", "-H", "64",
                                    "--fast", "--fast-parts", "control_reuse", "--fast-interval", "2",
                                    "--no-score", "--no-c2pa", "--no-watermark", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert "Fast: control_reuse, Fast interval: 2" in read_png_text(out)["parameters"]


def test_a_controlnet_call_holds_the_models_call_lock_so_no_other_request_sees_fast_modes_patch(setup, monkeypatch):
    """A ControlNet is shared by requests on different bases; fast mode patches it for a call. While
    one request calls it, another thread cannot take its lock (so cannot call it, patched or not)."""
    import threading

    from diffusers import ControlNetModel

    from kekong.models.patch import call_lock

    original, seen = ControlNetModel.forward, []

    def forward(self, *args, **kwargs):
        free = []
        probe = threading.Thread(target=lambda: free.append(call_lock(self).acquire(blocking=False)))
        probe.start()
        probe.join()
        seen.append(free[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ControlNetModel, "forward", forward)
    run(setup, fast=True)
    run(setup)
    assert seen and not any(seen)  # every call, shallow or full, fast or exact, held the lock

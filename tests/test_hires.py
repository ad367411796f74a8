"""Hires fix: a second, img2img pass at a larger size, with A1111's upscalers, infotext keys and
sd-webui-controlnet's per-unit `hr_option` (Both / Low res only / High res only)."""

from __future__ import annotations

import numpy as np
import pytest

from kekong.errors import ParameterError
from kekong.generation.pipeline import generate, steps_per_batch
from kekong.generation.units.controlnet import ControlNetUnit
from kekong.io import save_image
from kekong.provenance.infotext import parse_infotext
from kekong.provenance.stamp import Layers, read_png_text, stamp
from kekong.request import build_request
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hires")
    build_tiny_base(root / "base")
    build_tiny_controlnet(root / "cn")
    save_image(np.tile(np.eye(64, dtype=np.uint8)[..., None] * 255, (1, 1, 3)), root / "lines.png")
    return root


def request(models, **fields):
    return build_request(prompt="a star", model=str(models / "base"), width=64, height=64, steps=4, seed=3,
                         enable_hr=True, denoising_strength=0.5, **fields)


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (bicubic antialiased)", "Lanczos", "Nearest"])
def test_the_second_pass_makes_the_bigger_image(models, upscaler):
    [image] = generate(request(models, hr_upscaler=upscaler))
    assert image.image.shape == (128, 128, 3)


def test_resize_to_a_size_keeps_the_aspect_ratio_when_one_side_is_given(models):
    [image] = generate(request(models, hr_resize_x=96))
    assert image.image.shape == (96, 96, 3)


def test_infotext_has_a1111s_hires_keys(models, tmp_path):
    [image] = generate(request(models, hr_second_pass_steps=6, hr_sampler_name="Euler a", hr_prompt="a big star"))
    path = stamp(image, tmp_path / "out.png", layers=Layers(c2pa=False, watermark=False))
    _, _, params = parse_infotext(read_png_text(path)["parameters"])
    assert params["Size"] == "64x64" and params["Hires upscale"] == "2" and params["Hires upscaler"] == "Latent"
    assert params["Hires steps"] == "6" and params["Hires sampler"] == "Euler a"
    assert params["Hires prompt"] == "a big star" and params["Denoising strength"] == "0.5"


def test_progress_counts_both_passes(models):
    """A1111 runs all the hires steps (the last 6 of int(6 / 0.5) = 12 noise levels), whatever the strength."""
    assert steps_per_batch(request(models, hr_second_pass_steps=6)) == 4 + 6


@pytest.mark.parametrize(("option", "low", "high"), [("Both", True, True), ("Low res only", True, False),
                                                     ("High res only", False, True)])
def test_units_act_in_the_passes_their_hr_option_names(models, monkeypatch, option, low, high):
    seen: dict[int, set[int]] = {}  # latent width → numbers of units offered
    original = ControlNetUnit.contribute.__func__

    def spy(cls, units, step):
        seen.setdefault(step.latent_in.shape[-1], set()).add(len(units))
        return original(cls, units, step)

    monkeypatch.setattr(ControlNetUnit, "contribute", classmethod(spy))
    unit = {"module": "none", "image": str(models / "lines.png"), "model": str(models / "cn"), "hr_option": option}
    generate(request(models, controls=[unit]))
    latent_low, latent_high = 64 // 8, 128 // 8  # the kind is asked only in passes that have its units
    assert (1 in seen.get(latent_low, set())) is low and (1 in seen.get(latent_high, set())) is high


@pytest.mark.parametrize(("fields", "message"), [
    ({"init_image": "x.png"}, "hires fix is for txt2img"),
    ({"hr_sampler_name": "Nonsense"}, "unknown hires sampler"),
    ({"controls": [{"module": "none", "image": "x.png", "hr_option": "sometimes"}]}, "unknown hr_option"),
])
def test_bad_hires_settings_are_refused_by_name(models, fields, message):
    with pytest.raises(ParameterError, match=message):
        request(models, **fields)


def test_a_missing_upscaler_is_refused_before_work_not_by_the_request_model(models):
    from kekong.generation.checks import check_files

    missing = request(models, hr_upscaler="R-ESRGAN 4x+")  # the request model reads no files
    with pytest.raises(ParameterError, match=r"hr_upscaler: 'R-ESRGAN 4x\+' is not available"):
        check_files(missing)
    with pytest.raises(ParameterError, match="is not available"):
        generate(missing)

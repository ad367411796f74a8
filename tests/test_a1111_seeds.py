"""Seeds, variation seeds, seed resize and prompt editing across a batch and the hires pass, as
A1111 does them (issue 21 items 5 and 6)."""

from __future__ import annotations

import pytest

import kekong
from kekong.generation import noise, text
from kekong.generation.hires import second_pass
from kekong.provenance.stamp import describe
from kekong.request import build_request
from tests.tiny_models import build_tiny_base

SMALL = {"prompt": "a red star", "width": 64, "height": 64, "steps": 2, "seed": 5, "batch_size": 2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_base(tmp_path_factory.mktemp("seeds") / "base"))


def test_without_a_variation_seed_each_image_takes_the_next_seed():
    images = kekong.generate(**SMALL, batch_count=2)
    assert [g.seed for g in images] == [5, 6, 7, 8]


def test_with_a_variation_seed_the_seed_stays_and_only_the_subseed_counts_on():
    images = kekong.generate(**SMALL, batch_count=2, subseed=77, subseed_strength=0.3)
    assert [(g.seed, g.subseed) for g in images] == [(5, 77), (5, 78), (5, 79), (5, 80)]
    infotext, _ = describe(images[1])
    assert "Seed: 5," in infotext and "Variation seed: 78," in infotext  # what A1111 writes on image 2


def test_the_hires_pass_keeps_seed_resize_from(tiny, monkeypatch):
    request = build_request(**{**SMALL, "batch_size": 1}, model=tiny, enable_hr=True, hr_scale=2,
                            denoising_strength=0.5, seed_resize_from_w=48, seed_resize_from_h=48)
    assert (second_pass(request).seed_resize_from_w, second_pass(request).seed_resize_from_h) == (48, 48)
    seen = []
    real = noise.initial_noise

    def spy(rng, seeds, shape, subseeds, strength, resize_from, *rest):
        seen.append((tuple(shape[1:]), tuple(resize_from)))
        return real(rng, seeds, shape, subseeds, strength, resize_from, *rest)

    monkeypatch.setattr(noise, "initial_noise", spy)
    kekong.generate(request)
    latent = 8  # the VAE's downscale factor
    assert [resize for _, resize in seen] == [(48 // latent, 48 // latent)] * 2  # both passes resize the noise
    assert seen[1][0][0] > seen[0][0][0]  # the second call is the bigger, hires pass


def test_prompt_edits_in_the_hires_pass_count_on_from_the_first(tiny, monkeypatch):
    calls = []
    real = text.schedule

    def spy(prompt, steps, base_steps=None):
        result = real(prompt, steps, base_steps)
        calls.append((base_steps, result))
        return result

    monkeypatch.setattr(text, "schedule", spy)
    kekong.generate(prompt="a [b:.5] c", negative_prompt="", model=tiny, width=64, height=64, steps=4, seed=1,
                    enable_hr=True, hr_scale=1.5, hr_second_pass_steps=4, denoising_strength=1.0)
    first = [result for base, result in calls if base is None]
    hires = [result for base, result in calls if base == 4]
    assert first[0] == [(2, "a  c"), (4, "a b c")]  # the first pass edits half-way
    assert hires[0] == [(4, "a b c")]  # A1111: `.5` has already happened when the hires pass starts


def test_dpm_sde_gives_the_same_image_for_the_same_seed():
    """Its Brownian noise is seeded with the image seed, not torch's global generator."""
    import numpy as np
    import torch

    fields = {"prompt": "a red star", "width": 64, "height": 64, "steps": 4, "seed": 9, "sampler": "DPM++ SDE"}
    [first] = kekong.generate(**fields)
    torch.rand(100)  # anything else drawing from the global generator in between
    [again] = kekong.generate(**fields)
    assert np.array_equal(first.image, again.image)

"""A1111's eta noise seed delta (option `eta_noise_seed_delta`, infotext `ENSD`): the starting noise is the
seed's, and every later draw (the ancestral samplers' noise) comes from a generator for seed + delta, as
A1111's ImageRNG.first() replaces its generators; written where A1111 writes it, read back, and taken
from override_settings, the server's options and the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from kekong.errors import ParameterError
from kekong.generation.noise import initial_noise, new_generator, next_noise, randn
from kekong.provenance.infotext import format_infotext
from kekong.provenance.infotext_request import infotext_fields
from kekong.provenance.stamp import infotext_params
from kekong.request import RngSource, build_request

SHAPE = (4, 8, 8)


@pytest.mark.parametrize("source", [RngSource.CPU, RngSource.GPU])
def test_the_starting_noise_stays_and_the_later_draws_come_from_seed_plus_delta(source):
    plain, plain_chain = initial_noise(source, [7, 8], SHAPE)
    delta, delta_chain = initial_noise(source, [7, 8], SHAPE, ensd=31337)
    assert torch.equal(plain, delta)
    later = next_noise(delta_chain, SHAPE)
    for index, seed in enumerate((7, 8)):
        assert torch.equal(later[index], randn(source, seed + 31337, SHAPE, new_generator(source, seed + 31337)))
    assert not torch.equal(later, next_noise(plain_chain, SHAPE))  # without it the seed's own chain goes on


def test_variation_seeds_and_seed_resize_still_shape_the_starting_noise():
    plain = initial_noise(RngSource.GPU, [5], SHAPE, [77], 0.3, (4, 4))[0]
    delta = initial_noise(RngSource.GPU, [5], SHAPE, [77], 0.3, (4, 4), ensd=1)[0]
    assert torch.equal(plain, delta)


def written(**fields) -> str:
    request = build_request(prompt="a star", steps=5, seed=11, width=64, height=64, **fields)
    generated = SimpleNamespace(request=request, seed=request.seed, base=SimpleNamespace(hash="0123456789",
                                name="kekong-shapes"), vae=None, subseed=None, batch_position=0, units=[])
    return format_infotext(request.prompt, request.negative_prompt, infotext_params(generated))


def test_ensd_is_written_for_the_samplers_a1111_writes_it_for_and_read_back():
    text = written(sampler="Euler a", eta_noise_seed_delta=31337)
    assert "Clip skip" not in text and ", ENSD: 31337," in text
    assert infotext_fields(text).fields["eta_noise_seed_delta"] == 31337
    for sampler in ("DPM2 a", "DPM++ 2S a", "DPM fast", "DPM adaptive"):
        assert "ENSD: 5" in written(sampler=sampler, eta_noise_seed_delta=5)
    # A1111 leaves it out where the sampler's noise does not follow it (no ancestral noise, or Brownian trees)
    for sampler in ("Euler", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DDIM"):
        assert "ENSD" not in written(sampler=sampler, eta_noise_seed_delta=31337)
    assert "ENSD" not in written(sampler="Euler a")


def test_an_a1111_infotext_with_ensd_gives_the_field():
    text = "a cat\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1, Size: 512x512, " \
           "ENSD: 31337, Version: v1.10.0"
    parsed = infotext_fields(text)
    assert parsed.fields["eta_noise_seed_delta"] == 31337 and not any("ENSD" in u for u in parsed.unused)


def test_the_option_reaches_the_request_with_its_declared_bounds():
    from kekong.server.a1111_request import _apply_options
    from kekong.server.services import _check_option

    fields: dict = {}
    _apply_options(fields, {"eta_noise_seed_delta": 31337}, "override_settings")
    assert fields == {"eta_noise_seed_delta": 31337}
    _check_option("eta_noise_seed_delta", 31337)
    for bad in (-1, 2**32, "31337", 1.5, True):
        with pytest.raises(ParameterError, match="option eta_noise_seed_delta"):
            _check_option("eta_noise_seed_delta", bad)
    with pytest.raises(ValueError, match="eta_noise_seed_delta"):
        build_request(eta_noise_seed_delta=-1)


def test_the_cli_flag_sets_it():
    from kekong.cli.generate import request_fields

    assert request_fields({"ensd": 31337})["eta_noise_seed_delta"] == 31337
    assert "eta_noise_seed_delta" not in request_fields({})


def test_it_changes_an_ancestral_samplers_image(tmp_path):
    import numpy as np

    import kekong
    from tests.tiny_models import build_tiny_base

    tiny = str(build_tiny_base(tmp_path / "base"))
    common = {"prompt": "a red star", "negative_prompt": "", "model": tiny, "width": 64, "height": 64, "steps": 3,
              "seed": 5, "rng": "GPU"}

    def image(**fields):
        return np.asarray(kekong.generate(**common, **fields)[0].image, np.int16)

    assert np.abs(image(sampler="Euler a") - image(sampler="Euler a", eta_noise_seed_delta=31337)).max() > 0

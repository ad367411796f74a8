"""Starting noise as A1111 makes it: the same seed gives the same numbers on each of its random
sources, and variation seeds and seed resize behave as A1111's do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kekong.generation.noise import Philox, initial_noise, randn, slerp
from kekong.request import RngSource

# torch.randn(3, 4) on CUDA after seeding with 0 — the values A1111 documents for its NV source
CUDA_SEED_0 = [[-0.92466259, -0.42534415, -2.6438457, 0.14518388],
               [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
               [-1.07454231, -0.36314407, -1.67105067, 2.26550497]]
# torch.randn(3, 4) on the CPU after seeding with 0
CPU_SEED_0 = [[1.5410, -0.2934, -2.1788, 0.5684], [-1.0845, -1.3986, 0.4033, 0.8380],
              [-0.7193, -0.4033, -0.5966, 0.1820]]


def test_gpu_and_nv_sources_give_cudas_numbers_without_a_gpu():
    for source in (RngSource.GPU, RngSource.NV):
        assert np.allclose(randn(source, 0, (3, 4)).numpy(), CUDA_SEED_0, atol=1e-5)


def test_cpu_source_gives_torchs_cpu_numbers():
    assert np.allclose(randn(RngSource.CPU, 0, (3, 4)).numpy(), CPU_SEED_0, atol=1e-4)


def test_philox_moves_to_the_next_subsequence_on_each_draw():
    generator = Philox(42)
    first, second = generator.randn((64,)), generator.randn((64,))
    assert not np.allclose(first, second)
    assert np.allclose(first, Philox(42).randn((64,)))
    assert abs(first.mean()) < 0.5 and 0.6 < first.std() < 1.4


@pytest.mark.parametrize("source", list(RngSource))
def test_variation_strength_moves_from_the_seed_to_the_variation_seed(source):
    shape = (4, 8, 8)
    own, other = randn(source, 5, shape), randn(source, 9, shape)
    at = {s: initial_noise(source, [5], shape, [9], s)[0][0] for s in (0.0, 0.3, 1.0)}
    assert torch.allclose(initial_noise(source, [5], shape)[0][0], own)
    assert torch.allclose(at[1.0], other, atol=1e-5)
    assert not torch.allclose(at[0.3], own) and not torch.allclose(at[0.3], other)
    assert torch.allclose(at[0.3], slerp(0.3, own, other))


def test_seed_resize_pastes_the_other_sizes_noise_centred():
    source = RngSource.CPU
    wide, _ = initial_noise(source, [3], (4, 8, 16), resize_from=(8, 8))
    assert torch.equal(wide[0, :, :, 4:12], randn(source, 3, (4, 8, 8)))
    narrow, _ = initial_noise(source, [3], (4, 8, 8), resize_from=(8, 16))
    assert torch.equal(narrow[0], randn(source, 3, (4, 8, 16))[:, :, 4:12])


def test_cpu_generators_continue_after_the_starting_noise_as_a1111s_do():
    noise, [generator] = initial_noise(RngSource.CPU, [11], (4, 8, 8))
    reference = torch.Generator().manual_seed(11)
    assert torch.equal(noise[0], torch.randn((4, 8, 8), generator=reference))
    assert torch.equal(torch.randn(3, generator=generator), torch.randn(3, generator=reference))


def test_generation_with_variation_seeds_is_recorded_and_replays(tmp_path):
    """End to end on tiny models: the infotext carries A1111's keys, and replay (which re-runs
    the image's batch with its own variation seed) gives the same pixels."""
    from kekong.generation.pipeline import generate
    from kekong.provenance.infotext import parse_infotext
    from kekong.provenance.replay import load_recipe, replay
    from kekong.provenance.stamp import Layers, read_png_text, stamp
    from kekong.request import build_request
    from tests.tiny_models import build_tiny_base

    build_tiny_base(tmp_path / "base")
    request = build_request(prompt="a star", model=str(tmp_path / "base"), width=64, height=64, steps=2, seed=10,
                            subseed=500, subseed_strength=0.4, seed_resize_from_w=48, seed_resize_from_h=64,
                            rng="NV", batch_size=2, batch_count=2)
    results = generate(request)
    assert [g.subseed for g in results] == [500, 501, 502, 503]
    path = stamp(results[3], tmp_path / "out.png", layers=Layers(c2pa=False))
    _, _, params = parse_infotext(read_png_text(path)["parameters"])
    assert params["Seed"] == "10" and params["Variation seed"] == "503"  # A1111: with a variation seed the seed stays
    assert params["Variation seed strength"] == "0.4" and params["Seed resize from"] == "48x64"
    assert params["RNG"] == "NV"
    again, _ = replay(load_recipe(path))
    assert np.array_equal(again.image, results[3].image) and again.subseed == 503
    plain = generate(request.model_copy(update={"subseed_strength": 0.0, "batch_count": 1}))
    assert not np.array_equal(plain[1].image, results[1].image)

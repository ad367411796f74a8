"""The noise a sampler draws after the starting noise, and img2img's step count, as A1111 1.10 has
them (issue 21). A1111 keeps one generator per image (rng.ImageRNG: `create_generator(seed)`, a
CUDA generator for "GPU", rng_philox for "NV", torch's CPU one for "CPU"); the starting noise is
its first draw and every later `randn_like` of a k-diffusion sampler its next one. The SDE
samplers' Brownian trees draw through `randn_local(seed, size)`, A1111's replacement for torchsde's
`_randn`. img2img runs `int(min(strength, 0.999) · steps) + 1` of `steps` noise levels
(sd_samplers_common.setup_img2img_steps, then `sigmas[steps - t_enc - 1:]`); the hires pass passes
its steps, so it runs all of them, the last of `int(steps / min(strength, 0.999))` levels.

The reference numbers below are A1111's algorithm written out here: Philox 4×32-10 on Python
integers and rng_philox's Box–Muller, not kekong's noise module."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import kekong
import kekong.models.configs
from kekong.generation import k_scheduler, samplers
from kekong.generation.noise import initial_noise
from kekong.generation.pipeline import _timesteps
from kekong.request import RngSource, build_request

SD15 = json.loads((Path(kekong.models.configs.__file__).parent / "sd15" / "scheduler" /
                   "scheduler_config.json").read_text())
MASK = 0xFFFFFFFF
SHAPE = (4, 8, 8)


def philox_randn(seed: int, offset: int, count: int) -> np.ndarray:
    """rng_philox.Generator(seed).randn((count,)) for its `offset`-th call (torch.randn on CUDA)."""
    xs, ys = [], []
    for index in range(count):
        counter = [offset, 0, index, 0]
        key = [seed & MASK, (seed >> 32) & MASK]
        for round_ in range(10):
            if round_:
                key = [(key[0] + 0x9E3779B9) & MASK, (key[1] + 0xBB67AE85) & MASK]
            high_low_0 = 0xD2511F53 * counter[0]
            high_low_2 = 0xCD9E8D57 * counter[2]
            counter = [(high_low_2 >> 32) ^ counter[1] ^ key[0], high_low_2 & MASK,
                       (high_low_0 >> 32) ^ counter[3] ^ key[1], high_low_0 & MASK]
        xs.append(counter[0])
        ys.append(counter[1])
    x, y = np.array(xs, np.uint32), np.array(ys, np.uint32)
    two_pow32_inv = np.array([2.3283064e-10], dtype=np.float32)
    two_pow32_inv_2pi = np.array([2.3283064e-10 * 6.2831855], dtype=np.float32)
    u = x * two_pow32_inv + two_pow32_inv / 2
    v = y * two_pow32_inv_2pi + two_pow32_inv_2pi / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


def a1111_draws(source: RngSource, seeds: list[int], draws: int, shape: tuple[int, ...] = SHAPE) \
        -> list[torch.Tensor]:
    """ImageRNG: the first draw (the starting noise), then `draws` calls of next(), per image stacked."""
    count = math.prod(shape)
    if source == RngSource.CPU:
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        return [torch.stack([torch.randn(shape, generator=g) for g in generators]) for _ in range(draws + 1)]
    return [torch.stack([torch.from_numpy(philox_randn(seed, offset, count).reshape(shape)) for seed in seeds])
            for offset in range(draws + 1)]


def recorded_noise(monkeypatch) -> list[torch.Tensor]:
    drawn: list[torch.Tensor] = []
    real = k_scheduler.KDiffusionScheduler._noise

    def spy(self, sigma, sigma_next):
        out = real(self, sigma, sigma_next)
        drawn.append(out.clone())
        return out

    monkeypatch.setattr(k_scheduler.KDiffusionScheduler, "_noise", spy)
    return drawn


def run_sampler(sampler: str, source: RngSource, seeds: list[int], steps: int) -> torch.Tensor:
    """A k-diffusion sampler driven as the pipeline drives it, with a fixed stand-in model."""
    scheduler = samplers.make_scheduler(sampler, "Automatic", SD15, seeds)
    scheduler.set_timesteps(steps)
    noise, generators = initial_noise(source, seeds, SHAPE)
    scheduler.noise_from(source, generators)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(torch.tanh(scheduler.scale_model_input(x, t)) * 0.3, t, x, return_dict=False)[0]
    return x


@pytest.mark.parametrize("source", [RngSource.GPU, RngSource.NV, RngSource.CPU])
def test_ancestral_noise_continues_each_images_generator_bit_for_bit(monkeypatch, source):
    drawn = recorded_noise(monkeypatch)
    run_sampler("Euler a", source, [5, 6], steps=4)
    assert len(drawn) == 3  # every step but the last adds noise
    reference = a1111_draws(source, [5, 6], 3)
    for got, expected in zip(drawn, reference[1:], strict=True):  # reference[0] is the starting noise
        assert torch.equal(got, expected)


def test_an_images_later_noise_does_not_depend_on_its_batch(monkeypatch):
    drawn = recorded_noise(monkeypatch)
    run_sampler("DPM2 a", RngSource.GPU, [5, 6], steps=4)
    together = [d[1] for d in drawn]
    drawn.clear()
    run_sampler("DPM2 a", RngSource.GPU, [6], steps=4)
    assert all(torch.equal(a, b[0]) for a, b in zip(together, drawn, strict=True))
    assert not torch.equal(together[0], together[1])


def test_dpm_fast_and_2s_a_draw_from_the_same_chain(monkeypatch):
    for sampler in ("DPM fast", "DPM++ 2S a"):
        drawn = recorded_noise(monkeypatch)
        run_sampler(sampler, RngSource.GPU, [9], steps=4)
        reference = a1111_draws(RngSource.GPU, [9], len(drawn))
        assert drawn and all(torch.equal(got, ref) for got, ref in zip(drawn, reference[1:], strict=True))


@pytest.mark.parametrize("source", [RngSource.GPU, RngSource.CPU])
def test_brownian_trees_draw_from_the_rng_source(source):
    """torchsde's tree over [σ_min, σ_max] starts with its whole increment W = _randn(W seed) √(σ_max − σ_min),
    the W seed being SeedSequence(entropy=seed, pool_size=24).generate_state(3)[0]; A1111's _randn is
    randn_local(seed, size): the source's first draw for that seed."""
    scheduler = samplers.make_scheduler("DPM++ 2M SDE", "Karras", SD15, [12])
    scheduler.set_timesteps(4)
    noise, generators = initial_noise(source, [12], SHAPE)
    scheduler.noise_from(source, generators)
    scheduler.step(torch.zeros((1, *SHAPE)), scheduler.timesteps[0], noise * scheduler.init_noise_sigma)
    low, high = scheduler.full_sigmas[-2], scheduler.full_sigmas[0]
    whole = scheduler._brownian(high, low)[0]  # noise(σ, σ_next) = W(σ_next) − W(σ) over √|Δσ|, downwards
    w_seed = int(np.random.SeedSequence(entropy=12, pool_size=24).generate_state(3)[0])
    if source == RngSource.CPU:
        first = torch.randn(SHAPE, generator=torch.Generator().manual_seed(w_seed))
    else:
        first = torch.from_numpy(philox_randn(w_seed, 0, math.prod(SHAPE)).reshape(SHAPE))
    assert torch.allclose(whole, -first, atol=1e-5)


def test_the_pipeline_hands_the_sampler_the_images_generators(monkeypatch):
    drawn = recorded_noise(monkeypatch)
    kekong.generate(prompt="a red star", width=64, height=64, steps=3, seed=21, batch_size=2, sampler="Euler a",
                    rng="GPU")
    assert len(drawn) == 2 and drawn[0].shape == (2, 4, 16, 16)  # the shipped model's latents at 64 px
    reference = a1111_draws(RngSource.GPU, [21, 22], 2, (4, 16, 16))
    assert all(torch.equal(got, ref) for got, ref in zip(drawn, reference[1:], strict=True))


# --- img2img and hires step counts ---

def _a1111_img2img(steps: int, strength: float, fixed: bool) -> tuple[int, int]:
    """setup_img2img_steps: (levels, t_enc); k-diffusion runs t_enc + 1 steps from sigmas[levels - t_enc - 1]."""
    if fixed:
        return int(steps / min(strength, 0.999)), steps - 1
    return steps, int(min(strength, 0.999) * steps)


@pytest.mark.parametrize(("steps", "strength"), [(20, 0.5), (20, 0.75), (20, 1.0), (10, 0.3), (7, 0.6)])
@pytest.mark.parametrize("hires", [False, True])
def test_a_k_diffusion_sampler_from_an_image_runs_a1111s_noise_levels(steps, strength, hires):
    levels, t_enc = _a1111_img2img(steps, strength, hires)
    scheduler = samplers.make_scheduler("Euler", "Karras", SD15, 1)
    request = build_request(prompt="x", steps=steps, denoising_strength=strength, sampler="Euler", scheduler="Karras")
    _timesteps(scheduler, request, from_image=True, hires=hires)
    full = samplers.make_scheduler("Euler", "Karras", SD15, 1)
    full.set_timesteps(levels)
    assert torch.equal(scheduler.sigmas, full.sigmas[levels - t_enc - 1:])
    assert len(scheduler.sigmas) - 1 == t_enc + 1 == samplers.image_steps("Euler", steps, strength, hires)[1]


def test_img2img_step_counts():
    assert samplers.image_steps("Euler a", 20, 0.5) == (20, 11)  # A1111 runs one more than 20 × 0.5
    assert samplers.image_steps("DPM++ 2M", 20, 1.0) == (20, 20)
    assert samplers.image_steps("Euler", 20, 0.5, hires=True) == (40, 20)  # the hires pass: all its steps
    assert samplers.image_steps("Euler", 10, 0.3, hires=True) == (33, 10)
    assert samplers.image_steps("PLMS", 20, 0.5) == (20, 10)  # the diffusers-run samplers: steps × strength
    assert samplers.image_steps("PLMS", 10, 0.5, hires=True) == (20, 10)
    assert samplers.image_steps("DDIM", 20, 0.5) == (20, 10)  # A1111's DDIM: t_enc (it then runs t_enc − 1)
    assert samplers.image_steps("DDIM", 10, 0.5, hires=True) == (20, 9)


def test_a_diffusers_sampler_from_an_image_runs_its_last_timesteps():
    scheduler = samplers.make_scheduler("PLMS", "Automatic", SD15)
    request = build_request(prompt="x", steps=20, denoising_strength=0.5, sampler="PLMS")
    timesteps = _timesteps(scheduler, request, from_image=True)
    full = samplers.make_scheduler("PLMS", "Automatic", SD15)
    full.set_timesteps(20)
    assert torch.equal(timesteps, full.timesteps[-len(timesteps):]) and len(timesteps) >= 10
    ddim = samplers.make_scheduler("DDIM", "Automatic", SD15)  # A1111's: from timesteps[t_enc − 1], 9 of them
    assert _timesteps(ddim, request.model_copy(update={"sampler": "DDIM"}), from_image=True).tolist() == \
        list(range(451, 50, -50))


def test_the_progress_total_counts_the_steps_img2img_runs():
    from kekong.generation.pipeline import steps_per_batch

    def total(sampler: str) -> int:
        return steps_per_batch(build_request(prompt="x", init_image="in.png", steps=20, denoising_strength=0.5,
                                             sampler=sampler))

    assert (total("Euler a"), total("PLMS"), total("DDIM")) == (11, 10, 9)


@pytest.mark.parametrize(("subseeds", "strength", "resize"), [([9], 0.3, (0, 0)), (None, 0.0, (8, 4)),
                                                             ([9], 0.5, (4, 8))])
def test_variation_seeds_and_seed_resize_draw_once_from_the_images_generator(subseeds, strength, resize):
    """ImageRNG.first() draws the variation seed's and the resized noise from fresh seeded draws and the
    seed's own generator once (the full-size noise), so next() is its second draw either way."""
    from kekong.generation.noise import next_noise

    _, generators = initial_noise(RngSource.GPU, [5], SHAPE, subseeds, strength, resize)
    assert torch.equal(next_noise(generators, SHAPE), a1111_draws(RngSource.GPU, [5], 1)[1])

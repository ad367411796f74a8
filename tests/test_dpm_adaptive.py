"""DPM adaptive (A1111's `sample_dpm_adaptive`: DPM-Solver-23 with an adaptive step size, rtol 0.05,
atol 0.0078, h_init 0.05, η = 1): it picks its noise levels from the latents as it runs, so the loop
follows its evaluations one at a time (k_scheduler.Unplanned)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import kekong
import kekong.models.configs
from kekong.errors import ParameterError
from kekong.generation import k_samplers
from kekong.generation.k_scheduler import Unplanned
from kekong.generation.loop import Guidance, denoise
from kekong.generation.samplers import make_scheduler
from kekong.generation.text import Conditioning
from kekong.request import build_request

SD15 = json.loads((Path(kekong.models.configs.__file__).parent / "sd15" / "scheduler" /
                   "scheduler_config.json").read_text())
X = torch.linspace(-1, 1, 2 * 4 * 6 * 6).reshape(2, 4, 6, 6)


def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A smooth stand-in for a model's clean-latent prediction."""
    return torch.tanh(x / (1 + sigma)) * 0.8 + 0.1 * torch.sin(3 * x)


def drive(sampler, noise=None) -> tuple[torch.Tensor, list[float]]:
    """Run a k_samplers generator with `denoiser`; (final latents, σ of each evaluation)."""
    asked = []
    try:
        x, sigma = next(sampler)
        while True:
            asked.append(float(sigma))
            x, sigma = sampler.send((x, denoiser(x, sigma)))
    except StopIteration as stop:
        return stop.value, asked


def zero_noise(sigma, sigma_next):
    return torch.zeros_like(X)


SIGMAS = torch.tensor([14.6146, 0.0292, 0.0])


def test_the_first_try_evaluates_at_dpm_solver_3s_points():
    """t = −log σ; h = h_init = 0.05; with η = 1 the step goes down to σ_down of (σ(t), σ(t + h)),
    and DPM-Solver-3 evaluates at t, t + h'/3, t + 2h'/3 (h' = t_down − t)."""
    _, asked = drive(k_samplers.dpm_adaptive(X * 14.6146, SIGMAS, zero_noise))
    t = -torch.log(SIGMAS[0])
    sigma, sigma_next = torch.exp(-t), torch.exp(-(t + 0.05))
    up = torch.minimum(sigma_next, (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
    t_down = -torch.log((sigma_next ** 2 - up ** 2) ** 0.5)
    h = t_down - t
    assert asked[:3] == pytest.approx([float(torch.exp(-(t + k * h / 3))) for k in range(3)], rel=1e-5)
    assert len(asked) % 3 == 0  # three evaluations a try, accepted or not


def test_it_ends_at_the_last_noise_level_and_converges_as_the_tolerance_tightens():
    finals = {}
    for rtol in (0.05, 0.01, 0.0005):
        finals[rtol], asked = drive(k_samplers.dpm_adaptive(X * 14.6146, SIGMAS, zero_noise, rtol=rtol, eta=0.0))
        assert asked[0] == pytest.approx(14.6146, rel=1e-5) and min(asked) >= 0.0292 * (1 - 1e-5)
        finals[rtol, "evaluations"] = len(asked)
    assert finals[0.05, "evaluations"] < finals[0.01, "evaluations"] < finals[0.0005, "evaluations"]
    loose = (finals[0.05] - finals[0.0005]).abs().max()
    tight = (finals[0.01] - finals[0.0005]).abs().max()
    assert tight < loose < 0.05 * finals[0.0005].abs().max()  # two tolerances give close results


class UNet:
    """ε from `denoiser`: ε = (x − D(x)) / σ, the UNet seeing x / √(σ² + 1) at t."""

    def __init__(self, scheduler):
        self.scheduler, self.calls = scheduler, 0

    def __call__(self, sample, t, encoder_hidden_states, return_dict=False, **_):
        self.calls += 1
        sigma = self.scheduler._current()
        x = sample * (sigma ** 2 + 1) ** 0.5
        return ((x - denoiser(x, sigma)) / sigma,)


def run_loop(sampler: str, steps: int = 6, begin: int | None = None, steps_seen=None):
    scheduler = make_scheduler(sampler, "Automatic", SD15, [3, 4])
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps if begin is None else scheduler.begin_at(begin)
    cond = Conditioning(torch.zeros(2, 3, 5))
    guidance = Guidance([(1.0, [(steps, cond)])], None, 1.0, steps)
    unet = UNet(scheduler)
    on_step = (lambda info: steps_seen.append((info.step, info.total))) if steps_seen is not None else None
    out = denoise(unet, scheduler, X * scheduler.init_noise_sigma, timesteps, guidance, [],
                  [torch.Generator().manual_seed(s) for s in (3, 4)], on_step)
    return out, unet.calls, scheduler


def test_the_loop_follows_its_evaluations_and_reports_each():
    seen: list[tuple[int, int]] = []
    out, calls, scheduler = run_loop("DPM adaptive", steps_seen=seen)
    assert isinstance(scheduler.timesteps, Unplanned) and calls == scheduler.timesteps.evaluations
    assert calls % 3 == 0 and calls > 6  # it chose its own number of evaluations
    assert [step for step, _ in seen] == list(range(1, calls + 1))  # progress counts model evaluations
    assert {total for _, total in seen} == {6}  # against the planned steps, as A1111's progress
    assert torch.isfinite(out).all()


def test_it_differs_from_the_fixed_step_samplers():
    adaptive, _, _ = run_loop("DPM adaptive")
    for other in ("DPM fast", "DPM2", "DPM++ 2M"):
        fixed, _, _ = run_loop(other)
        assert not torch.allclose(adaptive, fixed, atol=1e-3), other


def test_from_an_image_it_runs_between_the_levels_img2img_leaves():
    _, _, scheduler = run_loop("DPM adaptive", steps=10, begin=4)
    levels = scheduler.timesteps.sigmas
    assert float(levels[0]) == pytest.approx(float(scheduler.full_sigmas[4]), rel=1e-5)
    assert min(float(s) for s in levels) >= float(scheduler.full_sigmas[-2]) * (1 - 1e-5)


def test_the_request_takes_it_with_automatic_only():
    assert build_request(prompt="x", sampler="DPM adaptive").sampler == "DPM adaptive"
    with pytest.raises(ParameterError, match="takes no Karras schedule type"):
        build_request(prompt="x", sampler="DPM adaptive", scheduler="Karras")


def test_it_generates_an_image():
    [image] = kekong.generate(prompt="a red star", width=64, height=64, steps=4, seed=8, sampler="DPM adaptive")
    [fast] = kekong.generate(prompt="a red star", width=64, height=64, steps=4, seed=8, sampler="DPM fast")
    assert image.image.shape == (64, 64, 3) and image.image.std() > 5
    assert abs(image.image.astype(int) - fast.image.astype(int)).mean() > 1

"""The samplers kekong took from A1111 1.10 beyond diffusers' (DPM++ 2M SDE Heun, DPM++ 2S a,
DPM++ 3M SDE, DPM fast, Restart, DDIM CFG++): their steps against k-diffusion's and A1111's
formulas, written out here; and how a model's output becomes the denoised latents."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import kekong.models.configs
from kekong.generation import k_samplers
from kekong.generation.loop import Guidance, denoise
from kekong.generation.samplers import make_scheduler
from kekong.generation.schedules import ModelSigmas, align_your_steps, karras
from kekong.generation.text import Conditioning

SD15 = json.loads((Path(kekong.models.configs.__file__).parent / "sd15" / "scheduler" /
                   "scheduler_config.json").read_text())
MODEL = ModelSigmas(SD15)
X = torch.linspace(-1, 1, 2 * 4 * 4 * 4).view(2, 4, 4, 4) * 14.6


def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A fixed stand-in for the model's clean-latent prediction."""
    return torch.tanh(0.3 * x) * (1 + 0.1 * torch.cos(sigma)) + 0.05 * x.flip(-1) / (1 + sigma)


def no_noise(sigma, sigma_next):
    return torch.zeros(())


def requests(sampler, sigmas, noise=no_noise, x=X):
    """Drive a sampler generator: every (x, σ) it asks the model about, and its result."""
    run = sampler(x.clone(), sigmas, noise)
    asked, request = [], next(run)
    while True:
        asked.append(request)
        try:
            request = run.send((request[0], denoiser(*request)))
        except StopIteration as stop:
            return asked, stop.value


def _t(sigma):
    return -torch.log(torch.as_tensor(sigma))


# --- how many model evaluations (A1111's "second order" samplers take two per step but the last) ---

@pytest.mark.parametrize(("sampler", "evaluations"), [
    ("DPM++ 2M SDE Heun", lambda n: n), ("DPM++ 2S a", lambda n: 2 * n - 1), ("DPM++ 3M SDE", lambda n: n),
    ("DPM fast", lambda n: n), ("Restart", lambda n: 2 * n - 1), ("Heun", lambda n: 2 * n - 1),
    ("DPM2", lambda n: 2 * n - 1), ("DPM++ SDE", lambda n: 2 * n - 1), ("Euler a", lambda n: n),
])
@pytest.mark.parametrize("steps", [4, 7, 12])
def test_model_evaluations_per_run(sampler, evaluations, steps):
    scheduler = make_scheduler(sampler, "Automatic", SD15)
    scheduler.set_timesteps(steps)
    assert len(scheduler.timesteps) == evaluations(steps)


# --- first steps against the formulas ---

def test_dpmpp_2s_ancestral_first_step():
    """k-diffusion: σ_down, σ_up = ancestral step; x₂ = (σ_s/σ) x − (e^{−h/2} − 1) D(x, σ) at the
    midpoint s of log σ between σ and σ_down; x' = (σ_down/σ) x − (e^{−h} − 1) D(x₂, σ_s) + σ_up n."""
    sigmas = karras(5, MODEL)
    asked, _ = requests(k_samplers.dpmpp_2s_ancestral, sigmas)
    s0, s1 = sigmas[0], sigmas[1]
    up = torch.minimum(s1, (s1 ** 2 * (s0 ** 2 - s1 ** 2) / s0 ** 2) ** 0.5)
    down = (s1 ** 2 - up ** 2) ** 0.5
    h = _t(down) - _t(s0)
    mid = torch.exp(-(_t(s0) + h / 2))
    x2 = (mid / s0) * X - torch.expm1(-h / 2) * denoiser(X, s0)
    assert torch.allclose(asked[1][1], mid) and torch.allclose(asked[1][0], x2, atol=1e-5)
    x1 = (down / s0) * X - torch.expm1(-h) * denoiser(x2, mid)
    assert torch.allclose(asked[2][0], x1, atol=1e-5) and torch.equal(asked[2][1], s1)


def test_dpmpp_3m_sde_steps():
    """With η = 1: x₁ = e^{−2h} x + (1 − e^{−2h}) D₀; the second step adds φ₂ (D₁ − D₀) / r, the third
    k-diffusion's two-history correction (without noise here: the noise term is σ_next √(1 − e^{−2h}) n)."""
    sigmas = torch.tensor([14.6, 6.0, 2.2, 0.7, 0.2, 0.0])
    asked, _ = requests(k_samplers.dpmpp_3m_sde, sigmas)
    h = [_t(sigmas[i + 1]) - _t(sigmas[i]) for i in range(4)]
    d = [denoiser(*asked[i]) for i in range(4)]
    x1 = torch.exp(-2 * h[0]) * X + (1 - torch.exp(-2 * h[0])) * d[0]
    assert torch.allclose(asked[1][0], x1, atol=1e-5)
    phi2 = torch.expm1(-2 * h[1]) / (2 * h[1]) + 1
    x2 = torch.exp(-2 * h[1]) * x1 + (1 - torch.exp(-2 * h[1])) * d[1] + phi2 * (d[1] - d[0]) / (h[0] / h[1])
    assert torch.allclose(asked[2][0], x2, atol=1e-5)
    r0, r1 = h[1] / h[2], h[0] / h[2]
    d10, d11 = (d[2] - d[1]) / r0, (d[1] - d[0]) / r1
    phi2 = torch.expm1(-2 * h[2]) / (2 * h[2]) + 1
    phi3 = phi2 / (2 * h[2]) - 0.5
    x3 = (torch.exp(-2 * h[2]) * x2 + (1 - torch.exp(-2 * h[2])) * d[2]
          + phi2 * (d10 + (d10 - d11) * r0 / (r0 + r1)) - phi3 * (d10 - d11) / (r0 + r1))
    assert torch.allclose(asked[3][0], x3, atol=1e-4)


def test_dpmpp_2m_sde_heun_differs_from_midpoint_by_its_correction():
    """Second step: midpoint adds ½ (1 − e^{−2h}) (D₁ − D₀) / r, Heun ((1 − e^{−2h}) / (2h) ... ) as k-diffusion's
    `((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) / r (D₁ − D₀)`; the first step is the same."""
    sigmas = torch.tensor([14.6, 6.0, 2.2, 0.0])
    heun, _ = requests(k_samplers.dpmpp_2m_sde_heun, sigmas)
    mid, _ = requests(k_samplers.dpmpp_2m_sde, sigmas)
    assert torch.equal(heun[1][0], mid[1][0])
    h0, h1 = _t(sigmas[1]) - _t(sigmas[0]), _t(sigmas[2]) - _t(sigmas[1])
    change = (denoiser(*heun[1]) - denoiser(*heun[0])) / (h0 / h1)
    heun_term = (torch.expm1(-2 * h1) / (-2 * h1)) * -1 + 1
    midpoint_term = 0.5 * -torch.expm1(-2 * h1)
    assert torch.allclose(heun[2][0] - mid[2][0], (heun_term - midpoint_term) * change, atol=1e-5)


def test_dpm_fast_visits_what_dpm_solver_fast_plans():
    """n = 7 evaluations: m = ⌊7/3⌋ + 1 = 3 steps of orders [3, 3, 1] evenly in t = −log σ from
    σ_max to σ_min (η = 1 shortens each to its ancestral σ_down); orders 3 evaluate at t, t + h/3, t + 2h/3."""
    sigmas = MODEL.uniform(7)
    asked, result = requests(k_samplers.dpm_fast, sigmas)
    assert len(asked) == 7
    t = torch.linspace(float(_t(sigmas[0])), float(_t(sigmas[-2])), 4)
    levels = torch.stack([s for _, s in asked])
    assert torch.allclose(levels[[0, 3, 6]], torch.exp(-t[:3]), rtol=1e-5)
    s_down = k_samplers.ancestral_step(torch.exp(-t[0]), torch.exp(-t[1]))[0]
    h = _t(s_down) - t[0]
    assert torch.allclose(levels[1:3], torch.exp(-(t[0] + torch.tensor([1 / 3, 2 / 3]) * h)), rtol=1e-5)
    assert torch.isfinite(result).all()


def _karras(n: int, low: float, high: float) -> np.ndarray:
    ramp = np.linspace(0, 1, n)
    return np.append((high ** (1 / 7) + ramp * (low ** (1 / 7) - high ** (1 / 7))) ** 7, 0.0)


def test_restart_goes_back_up_as_a1111s_restart_list_says():
    """20 steps: Karras over 20 − 9 = 11 levels; from the level nearest σ = 0.1 back up to the one
    nearest σ = 2 and down again over 9 more (Karras, 10 levels less the 0), re-noised for the
    climb; Heun steps throughout (two evaluations each but the last)."""
    sigmas = karras(20, MODEL)
    base = _karras(11, MODEL.sigma_min, MODEL.sigma_max)
    low, high = int(np.argmin(abs(base - 0.1))), int(np.argmin(abs(base - 2)))
    climb = _karras(10, base[low], base[high])[:-1]
    straight = [(base[i], base[i + 1]) for i in range(len(base) - 1)]
    expected = straight[:low] + list(itertools.pairwise(climb)) + straight[low:]
    pairs = [(float(a), float(b)) for a, b in k_samplers.restart_steps(sigmas)]
    assert len(pairs) == 20 and np.allclose(pairs, expected, rtol=1e-5)
    drawn = []

    def noise(sigma, sigma_next):
        drawn.append(float(sigma))
        return torch.ones(())

    asked, _ = requests(k_samplers.restart, sigmas, noise)
    assert drawn == [pytest.approx(climb[0], rel=1e-5)]  # one climb, re-noised once
    assert len(asked) == 39


def test_restart_below_20_steps_is_heun():
    sigmas = karras(10, MODEL)
    assert [request[1] for request in requests(k_samplers.restart, sigmas)[0]] == \
        [request[1] for request in requests(k_samplers.heun, sigmas)[0]]


# --- DDIM CFG++ ---

class Denoiser:
    def __call__(self, sample, t, encoder_hidden_states, return_dict=False, **_):
        text = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return (torch.tanh(0.7 * sample + torch.as_tensor(t, dtype=sample.dtype) / 900) * (1 + text),)


COND, UNCOND = torch.full((2, 3, 5), 0.4), torch.zeros(2, 3, 5)


def _ddim(sampler: str, scale: float, steps: int = 4) -> torch.Tensor:
    scheduler = make_scheduler(sampler, "Automatic", SD15)
    scheduler.set_timesteps(steps)
    uncond = [(steps, Conditioning(UNCOND))] if scale > 1 else None
    guidance = Guidance([(1.0, [(steps, Conditioning(COND))])], uncond, scale, steps)
    latents = torch.linspace(-2, 2, 2 * 4 * 4 * 4).view(2, 4, 4, 4)
    return denoise(Denoiser(), scheduler, latents, scheduler.timesteps, guidance, [], [torch.Generator()] * 2)


def test_ddim_cfgpp_one_step_by_hand():
    """x₀ = (x − √(1−ᾱ) ε̃) / √ᾱ with ε̃ = ε_u + (7.5 / 12.5)(ε_c − ε_u); x' = √ᾱ' x₀ + √(1−ᾱ') ε_u."""
    scheduler = make_scheduler("DDIM CFG++", "Automatic", SD15)
    scheduler.set_timesteps(2)  # A1111's timesteps 1 and 501: one evaluation, at 501, stepping to t = 1
    t = int(scheduler.timesteps[0])
    x = torch.linspace(-2, 2, 2 * 4 * 4 * 4).view(2, 4, 4, 4)
    eps_u, eps_c = Denoiser()(x, t, UNCOND)[0], Denoiser()(x, t, COND)[0]
    alphas = scheduler.alphas_cumprod
    guided = eps_u + 7.5 / 12.5 * (eps_c - eps_u)
    x0 = (x - (1 - alphas[t]) ** 0.5 * guided) / alphas[t] ** 0.5
    assert t == 501 and len(scheduler.timesteps) == 1
    expected = alphas[1] ** 0.5 * x0 + (1 - alphas[1]) ** 0.5 * eps_u
    assert torch.allclose(_ddim("DDIM CFG++", 7.5, steps=2), expected, atol=1e-5)


def test_ddim_cfgpp_is_ddim_without_cfg_and_differs_with_it():
    assert torch.allclose(_ddim("DDIM CFG++", 1.0), _ddim("DDIM", 1.0), atol=1e-6)
    assert (_ddim("DDIM CFG++", 7.5) - _ddim("DDIM", 7.5)).abs().max() > 1e-2


# --- the model's output → denoised latents; SDXL's Align Your Steps ---

@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_a_perfect_prediction_gives_back_the_clean_latents(prediction):
    """x = x₀ + σ ε; the UNet sees x / √(σ² + 1) and predicts ε, or v = (ε − σ x₀) / √(σ² + 1)."""
    scheduler = make_scheduler("Euler", "Karras", {**SD15, "prediction_type": prediction})
    scheduler.set_timesteps(5)
    sigma = scheduler.sigmas[1]
    x0, eps = torch.linspace(-1, 1, 64).view(1, 4, 4, 4), torch.cos(torch.arange(64.0)).view(1, 4, 4, 4)
    output = eps if prediction == "epsilon" else (eps - sigma * x0) / (sigma ** 2 + 1) ** 0.5
    assert torch.allclose(scheduler._denoised(output, x0 + sigma * eps, sigma), x0, atol=1e-5)


def test_align_your_steps_uses_the_sdxl_table_for_sdxl():
    """A1111 uses the 11 published levels as they are at 11 steps (then 0), interpolated otherwise."""
    sd15, sdxl = align_your_steps(11, MODEL), align_your_steps(11, MODEL, sdxl=True)
    assert sd15[1] == pytest.approx(6.475) and sdxl[1] == pytest.approx(6.315) and sdxl[-1] == 0
    scheduler = make_scheduler("Euler", "Align Your Steps", SD15, sdxl=True)
    scheduler.set_timesteps(11)
    assert torch.allclose(scheduler.sigmas, sdxl)
    assert not torch.allclose(align_your_steps(10, MODEL, sdxl=True)[1], sdxl[1])


# --- previews show the predicted clean latents (A1111's live preview) ---

def test_step_previews_show_the_predicted_clean_latents():
    steps, shown = 5, []
    scheduler = make_scheduler("Euler", "Karras", SD15)
    scheduler.set_timesteps(steps)
    guidance = Guidance([(1.0, [(steps, Conditioning(COND))])], [(steps, Conditioning(UNCOND))], 5.0, steps)
    start = X * 1.0
    final = denoise(Denoiser(), scheduler, start, scheduler.timesteps, guidance, [], [torch.Generator()] * 2,
                    on_step=lambda info: shown.append((info.latents, info.shown)))
    sigma = scheduler.sigmas[0]
    model_in = torch.cat([start] * 2) / (sigma ** 2 + 1) ** 0.5
    uncond, cond = Denoiser()(model_in, scheduler.timesteps[0], torch.cat([UNCOND, COND]))[0].chunk(2)
    assert torch.allclose(shown[0][1], start - sigma * (uncond + 5.0 * (cond - uncond)), atol=1e-4)
    assert not torch.allclose(shown[0][1], shown[0][0])  # not the noisy latents
    assert torch.allclose(shown[-1][1], final, atol=1e-5)  # Euler's last step lands on its estimate


def test_a_zero_terminal_snr_model_is_refused_for_k_diffusion_samplers():
    from kekong.errors import ParameterError

    with pytest.raises(ParameterError, match="zero terminal SNR"):
        make_scheduler("Euler", "Automatic", {**SD15, "rescale_betas_zero_snr": True})

"""Every sampler and schedule type kekong offers, against what its A1111 1.10 name means.

Each check is made so that a wrong mapping fails:
- the names and Automatic's picks are A1111's (sd_samplers_kdiffusion / _timesteps / _lcm, sd_schedulers);
- the diffusers-run samplers (DDIM, PLMS, UniPC, LCM) are the diffusers class A1111's name stands
  for, and kekong's loop gives what a hand-run of that scheduler gives (atol 1e-6);
- the k-diffusion samplers (kekong's ports, driven through the loop) give what diffusers' scheduler
  for the same sampler gives when both visit the same noise levels;
- the noise levels are the ones A1111 computes (its formulas, written out here in numpy);
- samplers, and schedule types of one sampler, give different latents (except where A1111's are
  the same levels too), and stochastic samplers follow the seed.
The new samplers' own steps are checked in tests/test_samplers_a1111.py.
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import kekong.models.configs
from kekong.choices import SAMPLER_NAMES, SAMPLERS, SCHEDULE_TYPES
from kekong.errors import ParameterError
from kekong.generation.loop import Guidance, denoise
from kekong.generation.samplers import make_scheduler, resolved_schedule
from kekong.generation.text import Conditioning

# The config every A1111 single-file SD 1.5 checkpoint gets (what A1111's users load).
SD15 = json.loads((Path(kekong.models.configs.__file__).parent / "sd15" / "scheduler" /
                   "scheduler_config.json").read_text())

# A1111 1.10's samplers (label → Automatic's schedule, from each sampler's `scheduler` option), in its order.
A1111_SAMPLERS = {
    "DPM++ 2M": "Karras", "DPM++ SDE": "Karras", "DPM++ 2M SDE": "Exponential", "DPM++ 2M SDE Heun": "Exponential",
    "DPM++ 2S a": "Karras", "DPM++ 3M SDE": "Exponential", "Euler a": "Uniform", "Euler": "Uniform",
    "LMS": "Uniform", "Heun": "Uniform", "DPM2": "Karras", "DPM2 a": "Karras", "DPM fast": "Uniform",
    "DPM adaptive": "Uniform", "Restart": "Karras", "DDIM": "Uniform", "DDIM CFG++": "Uniform", "PLMS": "Uniform",
    "UniPC": "Uniform", "LCM": "Uniform"}
A1111_SCHEDULES = ("Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
                   "Align Your Steps", "Simple", "Normal", "DDIM", "Beta")
DISCARDS_PENULTIMATE = {"DPM2", "DPM2 a", "DPM++ 3M SDE"}

# The diffusers-run samplers: A1111's name → the diffusers scheduler, with the options that make it that sampler.
DIFFUSERS_RUN = {  # (DDIM and DDIM CFG++ run A1111's own timesteps and loop: tests/test_ddim_a1111.py)
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}
SCHEDULE_OPTION = {"Automatic": {}, "Uniform": {}, "Karras": {"use_karras_sigmas": True},
                   "Exponential": {"use_exponential_sigmas": True}, "Beta": {"use_beta_sigmas": True},
                   "SGM Uniform": {"timestep_spacing": "trailing"}}
# k-diffusion samplers diffusers also has: with the model's whole σ range ("linspace", offset 0)
# and a Karras/Exponential/Beta schedule, diffusers visits exactly A1111's noise levels.
DIFFUSERS_PORTS = {
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {"noise_sampler_seed": 1000}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
}
K_DIFFUSION = tuple(name for name in SAMPLER_NAMES if SAMPLERS[name].algorithm)
STEPS = 6


@functools.cache
def _built(sampler: str, schedule: str) -> object:
    """make_scheduler's scheduler, built once; copies are used."""
    return make_scheduler(sampler, schedule, SD15, 1000)


def built(sampler: str, schedule: str) -> object:
    return copy.deepcopy(_built(sampler, schedule))


def _supported() -> list[tuple[str, str]]:
    cases = []
    for sampler, schedule in itertools.product(SAMPLER_NAMES, SCHEDULE_TYPES):
        try:
            _built(sampler, schedule)
        except ParameterError:
            continue
        cases.append((sampler, schedule))
    return cases


SUPPORTED = _supported()


# --- a fixed denoiser and conditioning ---

class Denoiser:
    """A deterministic stand-in for a UNet: the prediction depends non-linearly on the latents, the
    timestep and the text embeddings (so CFG, scaling and timestep order all show in the result)."""

    def __call__(self, sample, t, encoder_hidden_states, return_dict=False, **_):
        t = torch.as_tensor(t, dtype=sample.dtype)
        text = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        eps = torch.tanh(0.7 * sample + 0.3 * torch.cos(t / 150.0)) * (1 + text) + 0.05 * sample.flip(-1)
        return (eps,)


BATCH, SHAPE = 2, (4, 8, 8)
COND = torch.linspace(-0.5, 0.5, BATCH * 3 * 5).view(BATCH, 3, 5)
UNCOND = torch.zeros(BATCH, 3, 5)
SCALE = 5.0


def _noise() -> torch.Tensor:
    return torch.randn((BATCH, *SHAPE), generator=torch.Generator().manual_seed(123))


def _generators() -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 + k) for k in range(BATCH)]


def run_kekong(sampler: str, schedule: str, global_seed: int = 7, seed: int | list[int] | None = None,
               steps: int = STEPS) -> torch.Tensor:
    """kekong's scheduler and loop, as pipeline.sample drives them (txt2img; `seed`: the image seeds
    pipeline.sample hands make_scheduler, which seed the SDE samplers' Brownian noise)."""
    scheduler = built(sampler, schedule) if seed is None else make_scheduler(sampler, schedule, SD15, seed)
    scheduler.set_timesteps(steps)
    guidance = Guidance([(1.0, [(steps, Conditioning(COND))])], [(steps, Conditioning(UNCOND))], SCALE, steps)
    torch.manual_seed(global_seed)  # nothing may depend on torch's global generator
    latents = _noise() * scheduler.init_noise_sigma
    return denoise(Denoiser(), scheduler, latents, scheduler.timesteps, guidance, [], _generators())


def run_diffusers(name: str, options: dict, schedule: str, start_sigma: float | None = None) -> torch.Tensor:
    """A diffusers scheduler, built here, in diffusers' own txt2img loop (from noise × `start_sigma`,
    or × its own init_noise_sigma)."""
    import diffusers

    cls = getattr(diffusers, name)
    switches = {k: False for k in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
                if k in inspect.signature(cls.__init__).parameters}
    scheduler = cls.from_config({**{k: v for k, v in SD15.items() if not k.startswith("_")}, **switches,
                                 **options, **SCHEDULE_OPTION[schedule]})
    scheduler.set_timesteps(STEPS)
    accepts = inspect.signature(scheduler.step).parameters
    extra = {"generator": _generators()} if "generator" in accepts else {}
    denoiser = Denoiser()
    latents = _noise() * (scheduler.init_noise_sigma if start_sigma is None else start_sigma)
    embeds = torch.cat([UNCOND, COND])
    with torch.no_grad():
        for t in scheduler.timesteps:
            model_in = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            uncond, cond = denoiser(model_in, t, embeds)[0].chunk(2)
            latents = scheduler.step(uncond + SCALE * (cond - uncond), t, latents, **extra).prev_sample
    return latents


# --- the names ---

def test_the_samplers_and_schedule_types_are_a1111s():
    assert tuple(A1111_SAMPLERS) == SAMPLER_NAMES
    assert SCHEDULE_TYPES == A1111_SCHEDULES


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_automatic_is_the_schedule_a1111_picks(sampler):
    assert resolved_schedule(sampler, "Automatic") == A1111_SAMPLERS[sampler]


def test_every_k_diffusion_sampler_takes_every_schedule_type():
    fixed = {"DPM fast", "DPM adaptive"}  # these space their own steps (A1111 hands them σ_min, σ_max only)
    for sampler in K_DIFFUSION:
        if sampler not in fixed:
            assert all((sampler, s) in SUPPORTED for s in SCHEDULE_TYPES), sampler
    assert ("Euler a", "Karras") in SUPPORTED  # diffusers' EulerAncestral cannot; A1111 can


# --- the diffusers-run samplers ---

@pytest.mark.parametrize(("sampler", "schedule"), [c for c in SUPPORTED if c[0] in DIFFUSERS_RUN])
def test_the_scheduler_is_the_one_a1111s_name_means(sampler, schedule):
    scheduler = built(sampler, schedule)
    name, options = DIFFUSERS_RUN[sampler]
    assert type(scheduler).__name__ == name
    wanted = {**options, **SCHEDULE_OPTION[schedule]}
    assert {k: scheduler.config[k] for k in wanted} == wanted
    others = {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"} - set(wanted)
    assert not any(scheduler.config.get(k) for k in others)  # a base config's switch never leaks in


@pytest.mark.parametrize(("sampler", "schedule"), [c for c in SUPPORTED if c[0] in DIFFUSERS_RUN])
def test_kekongs_loop_gives_what_the_diffusers_scheduler_gives(sampler, schedule):
    ours, theirs = run_kekong(sampler, schedule), run_diffusers(*DIFFUSERS_RUN[sampler], schedule)
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-6), (ours - theirs).abs().max()


# --- the k-diffusion samplers against diffusers' versions of them ---

# Where diffusers computes differently from k-diffusion, and how close the results are then:
# DPMSolverMultistep rounds the UNet's t to integers (A1111 does not: the test's denoiser rounds
# too); DPMSolverSDE computes t → σ in float64 where k-diffusion uses float32, which the SDE's
# Brownian tree and the stand-in denoiser amplify to a relative 1e-3.
PORT_CASES = [(s, k) for s in ("Euler", "LMS", "Heun") for k in ("Karras", "Exponential", "Beta")] + [
    ("DPM++ 2M", "Karras"), ("DPM++ SDE", "Karras")]
PORT_TOLERANCE = {"DPM++ SDE": 1e-3}


class RoundingDenoiser(Denoiser):
    def __call__(self, sample, t, *args, **kwargs):
        return super().__call__(sample, torch.as_tensor(t).round(), *args, **kwargs)


@pytest.mark.parametrize(("sampler", "schedule"), PORT_CASES)
def test_the_k_diffusion_ports_give_what_diffusers_gives_on_the_same_noise_levels(sampler, schedule, monkeypatch):
    name, options = DIFFUSERS_PORTS[sampler]
    spacing = {"timestep_spacing": "linspace", "steps_offset": 0}
    if sampler == "DPM++ 2M":
        monkeypatch.setattr(sys.modules[__name__], "Denoiser", RoundingDenoiser)
    ours = run_kekong(sampler, schedule, seed=1000)
    scheduler = built(sampler, schedule)
    scheduler.set_timesteps(STEPS)
    start = float(scheduler.sigmas[0])
    if name == "DPMSolverMultistepScheduler":  # it samples x / √(σ² + 1) (variance preserving)
        start /= (start ** 2 + 1) ** 0.5
    theirs = run_diffusers(name, {**options, **spacing}, schedule, start_sigma=start)
    assert torch.isfinite(ours).all()
    error = float((ours - theirs).abs().max() / theirs.abs().max())
    assert error < PORT_TOLERANCE.get(sampler, 3e-6), error


def test_euler_a_is_diffusers_euler_ancestral_on_its_noise_levels():
    """diffusers' Euler a has no Karras; on Uniform levels its t → σ interpolation is linear where
    k-diffusion's is log-linear (differences of about 1e-4 in σ), so the match is looser."""
    spacing = {"timestep_spacing": "linspace", "steps_offset": 0}
    ours = run_kekong("Euler a", "Uniform")
    theirs = run_diffusers(*DIFFUSERS_PORTS["Euler a"][:1], {**spacing}, "Uniform", start_sigma=14.614642)
    assert torch.allclose(ours, theirs, rtol=0, atol=2e-3), (ours - theirs).abs().max()
    assert (ours - run_kekong("Euler", "Uniform")).abs().max() > 1e-2  # and it is ancestral


# --- different samplers and schedule types give different latents ---

def test_different_samplers_give_different_latents():
    results = {sampler: run_kekong(sampler, "Automatic") for sampler in SAMPLER_NAMES
               if (sampler, "Automatic") in SUPPORTED}
    for a, b in itertools.combinations(results, 2):
        assert (results[a] - results[b]).abs().max() > 1e-3, (a, b)


# Schedule types whose noise levels are A1111's own equal ones: Normal is Uniform reached through
# σ → t, Polyexponential at A1111's default ρ = 1 is Exponential.
SAME_LEVELS = {("Uniform", "Normal"), ("Exponential", "Polyexponential")}


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_each_schedule_type_changes_the_result(sampler):
    schedules = [s for s in SCHEDULE_TYPES if s != "Automatic" and (sampler, s) in SUPPORTED]
    results = {s: run_kekong(sampler, s) for s in schedules}
    if (sampler, "Automatic") in SUPPORTED and schedules:
        assert torch.equal(run_kekong(sampler, "Automatic"), results[resolved_schedule(sampler, "Automatic")])
    for a, b in itertools.combinations(schedules, 2):
        if (a, b) in SAME_LEVELS:  # equal levels (to float rounding, which a Brownian tree may still tell apart)
            assert torch.allclose(_levels(sampler, a), _levels(sampler, b), rtol=1e-5), (a, b)
        else:
            assert (results[a] - results[b]).abs().max() > 1e-3, (a, b)


def _levels(sampler: str, schedule: str) -> torch.Tensor:
    scheduler = built(sampler, schedule)
    scheduler.set_timesteps(STEPS)
    return scheduler.sigmas


@pytest.mark.parametrize("sampler", ["Euler a", "DPM2 a", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a",
                                     "DPM++ 3M SDE", "DPM++ SDE", "DPM fast", "Restart", "LCM"])
def test_stochastic_samplers_noise_follows_the_seed(sampler):
    """Same seeds, same latents, whatever the process drew from torch's global generator before
    (the SDE samplers' Brownian trees are seeded with the image seeds, as A1111 seeds them); another
    seed, other latents. Restart adds noise only from 20 steps on (where it goes back up)."""
    steps = 20 if sampler == "Restart" else STEPS
    first = run_kekong(sampler, "Automatic", global_seed=1, seed=[1000, 1001], steps=steps)
    assert torch.equal(first, run_kekong(sampler, "Automatic", global_seed=2, seed=[1000, 1001], steps=steps))
    if SAMPLERS[sampler].algorithm in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"):
        assert (first - run_kekong(sampler, "Automatic", seed=[5, 6], steps=steps)).abs().max() > 1e-3


def test_an_sde_images_noise_does_not_depend_on_its_batch():
    """A1111 gives each image of a batch its own Brownian tree: image 2 of seeds [1000, 1001] is
    the image seed 1001 makes when it comes first."""
    pair = run_kekong("DPM++ 2M SDE", "Automatic", seed=[1000, 1001])
    swapped = run_kekong("DPM++ 2M SDE", "Automatic", seed=[1001, 1000])
    assert not torch.allclose(pair[0], pair[1])
    # the noise follows the seed; the starting latents stay where they were
    assert not torch.allclose(pair, swapped)
    scheduler = make_scheduler("DPM++ 2M SDE", "Automatic", SD15, [1000, 1001])
    scheduler.set_timesteps(STEPS)
    scheduler._pending = (torch.zeros(BATCH, *SHAPE), scheduler.sigmas[0])
    both = scheduler._noise(scheduler.sigmas[0], scheduler.sigmas[1])
    alone = make_scheduler("DPM++ 2M SDE", "Automatic", SD15, [1001])
    alone.set_timesteps(STEPS)
    alone._pending = (torch.zeros(1, *SHAPE), alone.sigmas[0])
    assert torch.equal(both[1], alone._noise(alone.sigmas[0], alone.sigmas[1])[0])


# --- the noise levels, against A1111's (k-diffusion's) schedules ---

def _model_sigmas() -> np.ndarray:
    """k-diffusion's CompVisDenoiser sigmas for SD's scaled-linear betas (t = 0 … 999)."""
    betas = np.linspace(SD15["beta_start"] ** 0.5, SD15["beta_end"] ** 0.5, 1000, dtype=np.float64) ** 2
    cumprod = np.cumprod(1 - betas)
    return ((1 - cumprod) / cumprod) ** 0.5


def _t_to_sigma(t: np.ndarray) -> np.ndarray:
    return np.exp(np.interp(t, np.arange(1000), np.log(_model_sigmas())))


def _sigma_to_t(sigma: float) -> float:
    return float(np.interp(np.log(sigma), np.log(_model_sigmas()), np.arange(1000)))


def a1111_levels(schedule: str, n: int) -> np.ndarray:
    """A1111 1.10's sd_schedulers.py for n steps, written out (σ_min = σ(t=0), σ_max = σ(t=999))."""
    from scipy import stats

    table = _model_sigmas()
    low, high = table[0], table[-1]
    if schedule in ("Uniform", "Normal"):  # linspace in t from σ_max's t to σ_min's
        return np.append(_t_to_sigma(np.linspace(_sigma_to_t(high), _sigma_to_t(low), n)), 0.0)
    if schedule == "Karras":
        ramp, rho = np.linspace(0, 1, n), 7.0
        return np.append((high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho, 0.0)
    if schedule in ("Exponential", "Polyexponential"):  # polyexponential's default ρ is 1
        return np.append(np.exp(np.linspace(np.log(high), np.log(low), n)), 0.0)
    if schedule == "SGM Uniform":
        return np.append(_t_to_sigma(np.linspace(999, 0, n + 1)[:-1]), 0.0)
    if schedule == "KL Optimal":
        k = np.arange(n + 1) / n
        return np.tan(k * np.arctan(low) + (1 - k) * np.arctan(high))
    if schedule == "Align Your Steps":
        ays = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
        xs = np.linspace(0, 1, 11)
        return np.append(np.exp(np.interp(np.linspace(0, 1, n), xs, np.log(ays[::-1])))[::-1], 0.0)
    if schedule == "Simple":
        return np.append([table[-(1 + int(k * 1000 / n))] for k in range(n)], 0.0)
    if schedule == "DDIM":
        return np.append(table[1::max(1000 // n, 1)][::-1], 0.0)
    assert schedule == "Beta"
    return np.append(low + stats.beta.ppf(1 - np.linspace(0, 1, n), 0.6, 0.6) * (high - low), 0.0)


def a1111_sigmas(sampler: str, schedule: str, n: int) -> np.ndarray:
    """The levels A1111's get_sigmas gives a sampler (DPM2, DPM2 a, DPM++ 3M SDE: one more, next-to-last dropped)."""
    schedule = A1111_SAMPLERS[sampler] if schedule == "Automatic" else schedule
    if sampler not in DISCARDS_PENULTIMATE:
        return a1111_levels(schedule, n)
    levels = a1111_levels(schedule, n + 1)
    return np.concatenate([levels[:-2], levels[-1:]])


@pytest.mark.parametrize(("sampler", "schedule"), [c for c in SUPPORTED if c[0] in K_DIFFUSION])
def test_the_noise_levels_are_a1111s(sampler, schedule):
    scheduler = built(sampler, schedule)
    scheduler.set_timesteps(STEPS)
    levels = scheduler.sigmas.double().numpy()
    expected = a1111_sigmas(sampler, schedule, STEPS)
    assert levels.shape == expected.shape
    assert np.allclose(levels, expected, rtol=1e-4, atol=1e-5), (levels, expected)


def test_euler_at_10_steps_starts_at_the_models_highest_noise_level():
    scheduler = make_scheduler("Euler", "Automatic", SD15)
    scheduler.set_timesteps(10)
    assert float(scheduler.sigmas[0]) == pytest.approx(14.6146, abs=1e-3)
    assert float(scheduler.timesteps[0]) == pytest.approx(999, abs=1e-3)


def test_dpm2_drops_the_next_to_last_level():
    scheduler = make_scheduler("DPM2", "Karras", SD15)
    scheduler.set_timesteps(STEPS)
    seven = a1111_levels("Karras", STEPS + 1)
    assert len(scheduler.sigmas) == STEPS + 1
    assert np.allclose(scheduler.sigmas.double().numpy(), np.append(seven[:-2], 0.0), rtol=1e-4)
    assert not np.allclose(scheduler.sigmas.double().numpy(), a1111_levels("Karras", STEPS), rtol=1e-3)


def test_img2img_starts_at_its_noise_level():
    """Denoising 0.5 of 6 steps: the last 3 steps' levels, the starting noise at the first of them."""
    scheduler = make_scheduler("Euler", "Karras", SD15)
    scheduler.set_timesteps(STEPS)
    full = scheduler.sigmas.clone()
    timesteps = scheduler.begin_at(3)
    assert torch.equal(scheduler.sigmas, full[3:]) and len(timesteps) == 3
    image, noise = torch.zeros(1, *SHAPE), torch.ones(1, *SHAPE)
    assert torch.allclose(scheduler.add_noise(image, noise, timesteps[:1]), noise * full[3])


@pytest.mark.parametrize("sampler", ["DDIM", "PLMS"])
def test_compvis_samplers_use_a1111s_timesteps(sampler):
    """A1111's DDIM/PLMS (sd_samplers_timesteps): t = 1, 1 + 1000 // n, … (descending); A1111's DDIM loop
    evaluates all but t = 1 (PLMS runs as diffusers' PNDM, which evaluates every one)."""
    scheduler = make_scheduler(sampler, "Automatic", SD15)
    scheduler.set_timesteps(STEPS)
    grid = (np.arange(0, 1000, 1000 // STEPS) + 1).tolist()  # 6 steps: 7 timesteps, 1 … 997
    assert sorted(set(scheduler.timesteps.tolist())) == (grid[1:] if sampler == "DDIM" else grid[:STEPS])


# --- combinations that would do nothing are refused by name ---

@pytest.mark.parametrize(("sampler", "schedule", "message"), [
    ("LCM", "SGM Uniform", "sampler 'LCM' takes no SGM Uniform schedule type"),
    ("DPM fast", "Karras", "sampler 'DPM fast' takes no Karras schedule type: it chooses its own noise levels"),
    ("DDIM", "KL Optimal", "sampler 'DDIM' takes no KL Optimal schedule type: it steps over A1111's DDIM timesteps"),
    ("PLMS", "KL Optimal", "sampler 'PLMS' does not support the KL Optimal schedule type"),
    ("DPM adaptive", "Karras", "sampler 'DPM adaptive' takes no Karras schedule type: it chooses its own noise"),
])
def test_a_schedule_type_a_sampler_would_not_honour_is_refused(sampler, schedule, message):
    with pytest.raises(ParameterError, match=message):
        make_scheduler(sampler, schedule, SD15)


def test_the_request_refuses_them_before_any_model_loads():
    from kekong.request import GenerationRequest

    with pytest.raises(ValueError, match="sampler 'LCM' takes no SGM Uniform schedule type"):
        GenerationRequest(prompt="x", sampler="LCM", scheduler="sgm_uniform")
    with pytest.raises(ValueError, match="sampler 'DPM fast' takes no Karras"):
        GenerationRequest(prompt="x", sampler="DPM fast Karras")
    assert GenerationRequest(prompt="x", sampler="Euler a Karras").scheduler == "Karras"

"""DDIM and DDIM CFG++ as A1111 1.10 runs them: its timesteps clip(range(0, 1000, 1000 // steps) + 1, 0, 999),
every one but the lowest evaluated from the top down (20 steps: 19 evaluations, ending at ᾱ of t = 1), and from
an image noised to timesteps[t_enc] then run from timesteps[t_enc − 1]. The reference below is A1111's ddim loop
(sd_samplers_timesteps_impl.ddim, η = 0) written out here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import kekong.models.configs
from kekong.errors import ParameterError
from kekong.generation.loop import Guidance, denoise
from kekong.generation.samplers import image_steps, make_scheduler
from kekong.generation.text import Conditioning

SD15 = json.loads((Path(kekong.models.configs.__file__).parent / "sd15" / "scheduler" /
                   "scheduler_config.json").read_text())
X = torch.linspace(-1, 1, 2 * 4 * 6 * 6).reshape(2, 4, 6, 6)


def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.3 * torch.tanh(x) + float(t) / 2000.0


class UNet:
    def __init__(self):
        self.seen: list[int] = []

    def __call__(self, sample, t, encoder_hidden_states, return_dict=False, **_):
        self.seen.append(int(t))
        return (eps_model(sample, t),)


def a1111_timesteps(steps: int) -> list[int]:
    return [min(max(t + 1, 0), 999) for t in range(0, 1000, 1000 // steps)]


def a1111_ddim(x: torch.Tensor, timesteps: list[int], alphas_cumprod: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """A1111's ddim(): for i in range(len(timesteps) − 1), index = len − 1 − i, a_prev of timesteps[index − 1]."""
    seen = []
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = eps_model(x, torch.tensor(timesteps[index]))
        seen.append(timesteps[index])
        a_t, a_prev = alphas_cumprod[timesteps[index]].item(), alphas_cumprod[timesteps[index - 1]].item()
        pred_x0 = (x - (1 - a_t) ** 0.5 * e_t) / a_t ** 0.5
        x = a_prev ** 0.5 * pred_x0 + (1 - a_prev) ** 0.5 * e_t
    return x, seen


def run(sampler: str, steps: int, begin: int | None = None, start: torch.Tensor = X):
    scheduler = make_scheduler(sampler, "Automatic", SD15)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps if begin is None else scheduler.begin_at(begin)
    guidance = Guidance([(1.0, [(steps, Conditioning(torch.zeros(2, 3, 5)))])], None, 1.0, steps)
    unet = UNet()
    out = denoise(unet, scheduler, start, timesteps, guidance, [], [torch.Generator().manual_seed(1)] * 2)
    return out, unet.seen, scheduler


@pytest.mark.parametrize("steps, evaluations", [(20, 19), (30, 30), (7, 7), (3, 3)])
def test_txt2img_runs_a1111s_timesteps_and_loop(steps, evaluations):
    out, seen, scheduler = run("DDIM", steps)
    expected, expected_seen = a1111_ddim(X, a1111_timesteps(steps), scheduler.alphas_cumprod)
    assert seen == expected_seen and len(seen) == evaluations
    assert torch.allclose(out, expected, atol=1e-5)


def test_20_steps_make_19_evaluations_ending_at_t_1():
    _, seen, scheduler = run("DDIM", 20)
    assert seen == list(range(951, 50, -50))  # 951 … 51; t = 1 is where the last step lands, never evaluated
    assert scheduler.previous(51) == 1
    _, seen3, scheduler3 = run("DDIM", 3)
    assert seen3 == [999, 667, 334] and scheduler3.previous(999) == 667  # clipped top: steps to the grid's next


def test_from_an_image_it_noises_to_t_enc_and_runs_t_enc_minus_one_steps():
    levels, t_enc = image_steps("DDIM", 20, 0.5)
    assert (levels, t_enc) == (20, 10)
    scheduler = make_scheduler("DDIM", "Automatic", SD15)
    scheduler.set_timesteps(levels)
    timesteps = scheduler.begin_at(levels - t_enc)
    assert int(scheduler.noise_timestep) == 501 and timesteps.tolist() == list(range(451, 50, -50))  # 9
    assert image_steps("DDIM", 10, 0.5, hires=True) == (20, 9)  # the hires pass: its steps − 1
    noised = scheduler.add_noise(X, torch.ones_like(X), scheduler.noise_timestep.reshape(1))
    a = scheduler.alphas_cumprod[501]
    assert torch.allclose(noised, a ** 0.5 * X + (1 - a) ** 0.5, atol=1e-6)
    scheduler.set_timesteps(20)
    with pytest.raises(ParameterError, match="runs t_enc − 1 steps"):
        scheduler.begin_at(19)


def test_ddim_cfgpp_steps_on_the_same_timesteps_and_is_ddim_without_cfg():
    ddim, seen, _ = run("DDIM", 20)
    cfgpp, seen_cfgpp, _ = run("DDIM CFG++", 20)
    assert seen == seen_cfgpp and torch.allclose(ddim, cfgpp, atol=1e-6)


def test_ddim_takes_no_schedule_type_of_its_own():
    from kekong.request import build_request

    with pytest.raises(ValueError, match="A1111's DDIM timesteps"):
        build_request(prompt="x", sampler="DDIM", scheduler="SGM Uniform")

"""DDIM as A1111 1.10 runs it (sd_samplers_timesteps: CompVisSampler.get_timesteps and
sd_samplers_timesteps_impl.ddim, η = 0), so an A1111 infotext's DDIM image comes back.

A1111's timesteps for `steps` are clip(range(0, 1000, 1000 // steps) + 1, 0, 999) — 20 steps:
1, 51, …, 951 — and its loop evaluates all of them but the lowest, from the top down, each step
going to the next lower one: 20 steps make 19 model evaluations and end at ᾱ of t = 1 (diffusers'
DDIM makes 20 and ends at ᾱ of t = 0). Where 1000 // steps does not divide 1000 there are more of
them (30 steps: 31 timesteps, 30 evaluations). From an image (img2img, the hires pass), A1111 noises
the latents to timesteps[t_enc] and evaluates timesteps[t_enc − 1] down to timesteps[1]
(sample_img2img: `timesteps[:t_enc]`, t_enc = int(min(strength, 0.999) · steps), or the hires
pass's steps − 1): t_enc − 1 evaluations.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler

from kekong.errors import ParameterError


class A1111DDIMScheduler(DDIMScheduler):
    grid: torch.Tensor  # every A1111 timestep, ascending
    noise_timestep: torch.Tensor | None = None  # from an image: the timestep its latents are noised to

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        train = self.config.num_train_timesteps
        self.num_inference_steps = num_inference_steps
        self.grid = torch.clip(torch.arange(0, train, train // num_inference_steps) + 1, 0, train - 1)
        if len(self.grid) < 2:
            raise ParameterError("A1111's DDIM evaluates all its timesteps but the lowest: at 1 step none; take 2 or "
                                 "more")
        self.timesteps = self.grid[1:].flip(0)
        self.noise_timestep = None

    def begin_at(self, index: int) -> torch.Tensor:
        """From an image: `index` = steps − t_enc; the timesteps run (t_enc − 1 of them)."""
        t_enc = self.num_inference_steps - index
        if t_enc < 2:
            raise ParameterError(f"A1111's DDIM from an image runs t_enc − 1 steps, here {max(t_enc - 1, 0)}: raise "
                                 "the denoising strength or the steps")
        self.noise_timestep = self.grid[t_enc]
        self.timesteps = self.grid[1:t_enc].flip(0)
        return self.timesteps

    def previous(self, timestep: Any) -> int:
        """The timestep a step from `timestep` goes to: the next lower of A1111's."""
        position = int(torch.nonzero(self.grid == int(timestep))[0, 0])
        return int(self.grid[position - 1])

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, eta: float = 0.0,
             use_clipped_model_output: bool = False, generator: Any = None, variance_noise: Any = None,
             return_dict: bool = True) -> Any:
        alpha = float(self.alphas_cumprod[int(timestep)])
        alpha_prev = float(self.alphas_cumprod[self.previous(timestep)])
        x0, eps = clean_and_noise(self.config.prediction_type, model_output, sample, alpha)
        prev = alpha_prev ** 0.5 * x0 + (1 - alpha_prev) ** 0.5 * eps
        return (prev, x0) if not return_dict else _Output(prev, x0)


def clean_and_noise(prediction_type: str, output: torch.Tensor, sample: torch.Tensor,
                    alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x₀, ε) from a model output of `prediction_type` at ᾱ = `alpha`."""
    if prediction_type == "v_prediction":
        return alpha ** 0.5 * sample - (1 - alpha) ** 0.5 * output, alpha ** 0.5 * output + (1 - alpha) ** 0.5 * sample
    if prediction_type == "sample":
        return output, (sample - alpha ** 0.5 * output) / (1 - alpha) ** 0.5
    return (sample - (1 - alpha) ** 0.5 * output) / alpha ** 0.5, output


class _Output:
    def __init__(self, prev_sample: torch.Tensor, pred_original_sample: torch.Tensor):
        self.prev_sample, self.pred_original_sample = prev_sample, pred_original_sample

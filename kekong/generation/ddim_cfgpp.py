"""A1111's "DDIM CFG++" (sd_samplers_timesteps_impl.ddim_cfgpp; Chung et al., 2024, "CFG++:
Manifold-constrained Classifier Free Guidance"): DDIM whose clean-image estimate uses the guided
noise prediction at CFG scale / 12.5, and whose step back to the next timestep uses the
*unconditional* noise prediction. The loop hands the unconditional prediction over before each step
(`needs_uncond`); without CFG it is plain DDIM. It steps over A1111's DDIM timesteps (ddim_a1111.py)."""

from __future__ import annotations

from typing import Any

import torch

from kekong.generation.ddim_a1111 import A1111DDIMScheduler, _Output, clean_and_noise

CFG_DIVISOR = 12.5  # A1111: model.cond_scale_miltiplier = 1 / 12.5


class DDIMCFGPlusPlusScheduler(A1111DDIMScheduler):
    needs_uncond = True
    uncond: torch.Tensor | None = None  # the unconditional model output of this step, set by the loop

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, eta: float = 0.0,
             use_clipped_model_output: bool = False, generator: Any = None, variance_noise: Any = None,
             return_dict: bool = True) -> Any:
        uncond = model_output if self.uncond is None else self.uncond
        guided = uncond + (model_output - uncond) / CFG_DIVISOR
        alpha = float(self.alphas_cumprod[int(timestep)])
        alpha_prev = float(self.alphas_cumprod[self.previous(timestep)])
        x0, _ = clean_and_noise(self.config.prediction_type, guided, sample, alpha)
        _, eps_uncond = clean_and_noise(self.config.prediction_type, uncond, sample, alpha)
        prev = alpha_prev ** 0.5 * x0 + (1 - alpha_prev) ** 0.5 * eps_uncond
        self.uncond = None
        return (prev, x0) if not return_dict else _Output(prev, x0)

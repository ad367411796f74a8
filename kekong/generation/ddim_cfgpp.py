"""A1111's "DDIM CFG++" (sd_samplers_timesteps_impl.ddim_cfgpp; Chung et al., 2024, "CFG++:
Manifold-constrained Classifier Free Guidance"): DDIM whose clean-image estimate uses the guided
noise prediction at CFG scale / 12.5, and whose step back to the next timestep uses the
*unconditional* noise prediction. The loop hands the unconditional prediction over before each step
(`needs_uncond`); without CFG it is plain DDIM."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler

CFG_DIVISOR = 12.5  # A1111: model.cond_scale_miltiplier = 1 / 12.5


class DDIMCFGPlusPlusScheduler(DDIMScheduler):
    needs_uncond = True
    uncond: torch.Tensor | None = None  # the unconditional model output of this step, set by the loop

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, eta: float = 0.0,
             use_clipped_model_output: bool = False, generator: Any = None, variance_noise: Any = None,
             return_dict: bool = True) -> Any:
        uncond = model_output if self.uncond is None else self.uncond
        guided = uncond + (model_output - uncond) / CFG_DIVISOR
        prev_t = timestep - self.config.num_train_timesteps // self.num_inference_steps
        alpha = self.alphas_cumprod[timestep]
        alpha_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        x0 = self._x0(guided, sample, alpha)
        eps_uncond = self._eps(uncond, sample, alpha)
        prev = alpha_prev ** 0.5 * x0 + (1 - alpha_prev) ** 0.5 * eps_uncond
        self.uncond = None
        return (prev, x0) if not return_dict else _Output(prev, x0)

    def _x0(self, output: torch.Tensor, sample: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        if self.config.prediction_type == "v_prediction":
            return alpha ** 0.5 * sample - (1 - alpha) ** 0.5 * output
        if self.config.prediction_type == "sample":
            return output
        return (sample - (1 - alpha) ** 0.5 * output) / alpha ** 0.5

    def _eps(self, output: torch.Tensor, sample: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        if self.config.prediction_type == "v_prediction":
            return alpha ** 0.5 * output + (1 - alpha) ** 0.5 * sample
        if self.config.prediction_type == "sample":
            return (sample - alpha ** 0.5 * output) / (1 - alpha) ** 0.5
        return output


class _Output:
    def __init__(self, prev_sample: torch.Tensor, pred_original_sample: torch.Tensor):
        self.prev_sample, self.pred_original_sample = prev_sample, pred_original_sample

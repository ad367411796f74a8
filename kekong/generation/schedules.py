"""A1111 1.10's schedule types (modules/sd_schedulers.py): the noise levels σ a k-diffusion sampler
steps through, for a discrete-time (CompVis) model.

The model's own σ table (k-diffusion's CompVisDenoiser: σ_t = √((1 − ᾱ_t) / ᾱ_t), t = 0 … 999)
gives σ_min = σ_0 and σ_max = σ_999; every schedule spans that range, as A1111's do (diffusers'
"leading" spacing would start lower: σ 8.39 instead of 14.61 at 10 steps). Each function returns
n + 1 values, the last 0 (KL Optimal ends at σ_min, DDIM may give more levels than asked —
both as A1111 has them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# Align Your Steps' published 11 noise levels (NVIDIA's "how to" page, as A1111 lists them).
_AYS_SD15 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
_AYS_SDXL = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
BETA_ALPHA = BETA_BETA = 0.6  # A1111's beta_dist_alpha / beta_dist_beta defaults


class ModelSigmas:
    """k-diffusion's DiscreteSchedule for a model with `num_train_timesteps` discrete timesteps:
    its σ table and the conversions t ↔ σ (linear in log σ between table entries)."""

    def __init__(self, config: dict[str, Any]):
        self.alphas_cumprod = alphas_cumprod(config)
        sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        self.sigmas = torch.as_tensor(sigmas, dtype=torch.float32)
        self.log_sigmas = self.sigmas.log()
        self.sigma_min, self.sigma_max = float(self.sigmas[0]), float(self.sigmas[-1])

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = torch.as_tensor(sigma, dtype=torch.float32).log()
        dists = log_sigma - self.log_sigmas[:, None]
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        low_s, high_s = self.log_sigmas[low], self.log_sigmas[low + 1]
        w = ((low_s - log_sigma) / (low_s - high_s)).clamp(0, 1)
        return ((1 - w) * low + w * (low + 1)).view(log_sigma.shape)

    def uniform(self, n: int) -> torch.Tensor:
        """k-diffusion's get_sigmas: t evenly from the last table entry to 0."""
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return _append_zero(self.t_to_sigma(t))


def alphas_cumprod(config: dict[str, Any]) -> np.ndarray:
    """ᾱ_t for a diffusers scheduler config (the beta schedules SD-family models use), float64."""
    if config.get("rescale_betas_zero_snr"):
        from kekong.errors import ParameterError

        raise ParameterError("the model's scheduler config rescales its betas to zero terminal SNR (σ_max is "
                             "infinite), which k-diffusion's samplers cannot start from; use DDIM, PLMS, UniPC or LCM")
    count = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    kind = config.get("beta_schedule", "scaled_linear")
    if kind == "scaled_linear":
        betas = np.linspace(start ** 0.5, end ** 0.5, count, dtype=np.float64) ** 2
    elif kind == "linear":
        betas = np.linspace(start, end, count, dtype=np.float64)
    elif kind == "squaredcos_cap_v2":
        f = [math.cos((i / count + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(count + 1)]
        betas = np.array([min(1 - f[i + 1] / f[i], 0.999) for i in range(count)])
    else:
        from kekong.errors import ParameterError

        raise ParameterError(f"the model's beta schedule {kind!r} has no k-diffusion noise levels here; "
                             "use DDIM, PLMS, UniPC or LCM")
    return np.cumprod(1 - betas)


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def karras(n: int, model: ModelSigmas, rho: float = 7.0, **_: Any) -> torch.Tensor:
    """Karras et al. (2022), eq. 5: evenly spaced in σ^(1/ρ)."""
    ramp = torch.linspace(0, 1, n)
    low, high = model.sigma_min ** (1 / rho), model.sigma_max ** (1 / rho)
    return _append_zero((high + ramp * (low - high)) ** rho)


def exponential(n: int, model: ModelSigmas, **_: Any) -> torch.Tensor:
    """Evenly spaced in log σ."""
    return _append_zero(torch.linspace(math.log(model.sigma_max), math.log(model.sigma_min), n).exp())


def polyexponential(n: int, model: ModelSigmas, rho: float = 1.0, **_: Any) -> torch.Tensor:
    """A polynomial in log σ (k-diffusion's get_sigmas_polyexponential; ρ = 1 is Exponential's spacing)."""
    ramp = torch.linspace(1, 0, n) ** rho
    low, high = math.log(model.sigma_min), math.log(model.sigma_max)
    return _append_zero(torch.exp(ramp * (high - low) + low))


def sgm_uniform(n: int, model: ModelSigmas, **_: Any) -> torch.Tensor:
    """t evenly over n + 1 points from σ_max's t to σ_min's, the last point dropped (steps of 999/n)."""
    start = model.sigma_to_t(torch.tensor(model.sigma_max))
    end = model.sigma_to_t(torch.tensor(model.sigma_min))
    return _append_zero(model.t_to_sigma(torch.linspace(float(start), float(end), n + 1)[:-1]))


def kl_optimal(n: int, model: ModelSigmas, **_: Any) -> torch.Tensor:
    """Evenly spaced in arctan σ (Sabour et al., 2024); ends at σ_min, not 0, as A1111's does."""
    low, high = torch.arctan(torch.tensor(model.sigma_min)), torch.arctan(torch.tensor(model.sigma_max))
    steps = torch.arange(n + 1)
    return torch.tan(steps / n * low + (1.0 - steps / n) * high)


def align_your_steps(n: int, model: ModelSigmas, sdxl: bool = False, **_: Any) -> torch.Tensor:
    """NVIDIA's optimised levels: as published at n = 11 (A1111 compares n with the table's
    length), else log-linearly interpolated to n."""
    table = _AYS_SDXL if sdxl else _AYS_SD15
    if n == len(table):
        return torch.tensor([*table, 0.0], dtype=torch.float32)
    xs, ys = np.linspace(0, 1, len(table)), np.log(table[::-1])
    levels = np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1]
    return torch.tensor(np.append(levels, 0.0), dtype=torch.float32)


def simple(n: int, model: ModelSigmas, **_: Any) -> torch.Tensor:
    """Every (1000 / n)-th entry of the model's table, from the top."""
    stride = len(model.sigmas) / n
    return torch.tensor([float(model.sigmas[-(1 + int(k * stride))]) for k in range(n)] + [0.0])


def normal(n: int, model: ModelSigmas, **_: Any) -> torch.Tensor:
    """t evenly over n points from σ_max's t to σ_min's (Uniform's spacing, reached through σ → t)."""
    start = model.sigma_to_t(torch.tensor(model.sigma_max))
    end = model.sigma_to_t(torch.tensor(model.sigma_min))
    return _append_zero(model.t_to_sigma(torch.linspace(float(start), float(end), n)))


def ddim(n: int, model: ModelSigmas, **_: Any) -> torch.Tensor:
    """The table's entries 1, 1 + 1000 // n, … (reversed): DDIM's timesteps as σ (may be n + 1 levels)."""
    stride = max(len(model.sigmas) // n, 1)
    levels = [float(model.sigmas[k]) for k in range(1, len(model.sigmas), stride)]
    return torch.tensor([*levels[::-1], 0.0])


def beta(n: int, model: ModelSigmas, **_: Any) -> torch.Tensor:
    """σ_min + (σ_max − σ_min) · Beta(0.6, 0.6)⁻¹(1 − k / (n − 1)) (Lee et al., 2024)."""
    from scipy import stats

    ppf = [stats.beta.ppf(x, BETA_ALPHA, BETA_BETA) for x in 1 - np.linspace(0, 1, n)]
    return torch.tensor([model.sigma_min + x * (model.sigma_max - model.sigma_min) for x in ppf] + [0.0],
                        dtype=torch.float32)


def uniform(n: int, model: ModelSigmas, **_: Any) -> torch.Tensor:
    return model.uniform(n)


SCHEDULE_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "Uniform": uniform, "Karras": karras, "Exponential": exponential, "Polyexponential": polyexponential,
    "SGM Uniform": sgm_uniform, "KL Optimal": kl_optimal, "Align Your Steps": align_your_steps,
    "Simple": simple, "Normal": normal, "DDIM": ddim, "Beta": beta,
}


def sigmas_for(schedule: str, steps: int, model: ModelSigmas, discard_penultimate: bool = False,
               sdxl: bool = False) -> torch.Tensor:
    """The σ a k-diffusion sampler visits for `steps` steps (A1111's KDiffusionSampler.get_sigmas):
    samplers that discard the next-to-last σ (DPM2, DPM2 a, DPM++ 3M SDE) get one more and drop it."""
    sigmas = SCHEDULE_FUNCTIONS[schedule](steps + 1 if discard_penultimate else steps, model, sdxl=sdxl)
    if discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas.to(torch.float32)

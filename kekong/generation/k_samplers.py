"""k-diffusion's samplers (crowsonkb/k-diffusion, k_diffusion/sampling.py, as A1111 1.10 runs them;
Restart from A1111's sd_samplers_extra.py), written as generators so the generation loop can drive
them one model evaluation at a time.

A sampler is `sampler(x, sigmas, noise)`; each model evaluation is

    x, denoised = yield x, sigma

— it hands out the latents and noise level to evaluate at and gets back the latents the model saw
(the loop may have blended an inpainting mask into them) and the model's prediction of the clean
latents. Its return value is the final latents. `noise(sigma, sigma_next)` is the sampler's fresh
noise (standard normal; a Brownian tree for the SDE samplers, as A1111 seeds it). η = 1 and
s_noise = 1 for the ancestral and SDE samplers and churn 0 are A1111's defaults.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

Tensor = torch.Tensor
Noise = Callable[[Tensor, Tensor], Tensor]
Sampler = Generator[tuple[Tensor, Tensor], tuple[Tensor, Tensor], Tensor]
ETA = 1.0


def to_d(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """The Karras ODE derivative dx/dσ from a denoiser output."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: Tensor, sigma_to: Tensor, eta: float = ETA) -> tuple[Tensor, Tensor]:
    """(σ_down, σ_up): the level to step down to and the noise to add back (ancestral sampling)."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    sigma_up = eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5
    sigma_up = torch.minimum(sigma_to, sigma_up)
    return (sigma_to ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def _t(sigma: Tensor) -> Tensor:
    return sigma.log().neg()


def _sigma(t: Tensor) -> Tensor:
    return t.neg().exp()


def euler(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """Karras et al. (2022), Algorithm 2 with Euler steps."""
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


def euler_ancestral(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """Ancestral sampling with Euler steps."""
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        down, up = ancestral_step(sigmas[i], sigmas[i + 1])
        x = x + to_d(x, sigmas[i], denoised) * (down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * up
    return x


def heun(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """Karras et al. (2022), Algorithm 2 (Heun steps; Euler into σ = 0)."""
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        d = to_d(x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2, denoised_2 = yield x + d * dt, sigmas[i + 1]
            x = x + (d + to_d(x_2, sigmas[i + 1], denoised_2)) / 2 * dt
    return x


def dpm_2(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """DPM-Solver-2 steps (midpoint in log σ), inspired by Karras et al. (2022), Algorithm 2."""
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        d = to_d(x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigmas[i])
        else:
            mid = sigmas[i].log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2, denoised_2 = yield x + d * (mid - sigmas[i]), mid
            x = x + to_d(x_2, mid, denoised_2) * (sigmas[i + 1] - sigmas[i])
    return x


def dpm_2_ancestral(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """Ancestral sampling with DPM-Solver-2 steps."""
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        down, up = ancestral_step(sigmas[i], sigmas[i + 1])
        d = to_d(x, sigmas[i], denoised)
        if down == 0:
            x = x + d * (down - sigmas[i])
        else:
            mid = sigmas[i].log().lerp(down.log(), 0.5).exp()
            x_2, denoised_2 = yield x + d * (mid - sigmas[i]), mid
            x = x + to_d(x_2, mid, denoised_2) * (down - sigmas[i])
            x = x + noise(sigmas[i], sigmas[i + 1]) * up
    return x


def _lms_coefficient(order: int, t: list[float], i: int, j: int) -> float:
    from scipy import integrate

    def fn(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(fn, t[i], t[i + 1], epsrel=1e-4)[0]


def lms(x: Tensor, sigmas: Tensor, noise: Noise, order: int = 4) -> Sampler:
    """Linear multistep (order 4) on the Karras ODE."""
    levels = [float(s) for s in sigmas.detach().cpu().numpy()]
    ds: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        ds = [*ds, to_d(x, sigmas[i], denoised)][-order:]
        current = min(i + 1, order)
        coeffs = [_lms_coefficient(current, levels, i, j) for j in range(current)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds), strict=True))
    return x


def dpmpp_2s_ancestral(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """Ancestral sampling with DPM-Solver++(2S) second-order steps."""
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        down, up = ancestral_step(sigmas[i], sigmas[i + 1])
        if down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (down - sigmas[i])
        else:
            t, t_next = _t(sigmas[i]), _t(down)
            h = t_next - t
            s = t + h / 2
            _, denoised_2 = yield (_sigma(s) / _sigma(t)) * x - (-h / 2).expm1() * denoised, _sigma(s)
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * up
    return x


def dpmpp_sde(x: Tensor, sigmas: Tensor, noise: Noise, r: float = 1 / 2) -> Sampler:
    """DPM-Solver++ (stochastic), midpoint r = 1/2."""
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        down, up = ancestral_step(_sigma(t), _sigma(s))
        s_ = _t(down)
        x_2 = (_sigma(s_) / _sigma(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(_sigma(t), _sigma(s)) * up
        x_2, denoised_2 = yield x_2, _sigma(s)
        down, up = ancestral_step(_sigma(t), _sigma(t_next))
        t_next_ = _t(down)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma(t_next_) / _sigma(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise(_sigma(t), _sigma(t_next)) * up
    return x


def dpmpp_2m(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """DPM-Solver++(2M)."""
    old_denoised = None
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - _t(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def dpmpp_2m_sde(x: Tensor, sigmas: Tensor, noise: Noise, solver: str = "midpoint") -> Sampler:
    """DPM-Solver++(2M) SDE, with the midpoint or the Heun correction."""
    old_denoised = h_last = None
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            eta_h = ETA * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt()
        old_denoised, h_last = denoised, h
    return x


def dpmpp_2m_sde_heun(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """DPM-Solver++(2M) SDE with the Heun correction (A1111's "DPM++ 2M SDE Heun")."""
    return (yield from dpmpp_2m_sde(x, sigmas, noise, solver="heun"))


def dpmpp_3m_sde(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """DPM-Solver++(3M) SDE."""
    denoised_1 = denoised_2 = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        x, denoised = yield x, sigmas[i]
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            h_eta = h * (ETA + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * ETA).expm1().neg().sqrt()
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


# --- DPM-Solver (Lu et al., 2022), in t = −log σ: DPM fast ---

def _eps(x: Tensor, t: Tensor) -> Generator[tuple[Tensor, Tensor], tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    x, denoised = yield x, _sigma(t)
    return x, (x - denoised) / _sigma(t)


def _dpm_solver_step(order: int, x: Tensor, t: Tensor, t_next: Tensor) -> Sampler:
    """One DPM-Solver-1, -2 or -3 step from t to t_next (order model evaluations)."""
    h = t_next - t
    x, eps = yield from _eps(x, t)
    if order == 1:
        return x - _sigma(t_next) * h.expm1() * eps
    if order == 2:
        r1 = 1 / 2
        s1 = t + r1 * h
        _, eps_r1 = yield from _eps(x - _sigma(s1) * (r1 * h).expm1() * eps, s1)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
    r1, r2 = 1 / 3, 2 / 3
    s1, s2 = t + r1 * h, t + r2 * h
    _, eps_r1 = yield from _eps(x - _sigma(s1) * (r1 * h).expm1() * eps, s1)
    u2 = (x - _sigma(s2) * (r2 * h).expm1() * eps
          - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
    _, eps_r2 = yield from _eps(u2, s2)
    return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)


def dpm_fast(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """DPM-Solver-fast: len(sigmas) − 1 evaluations in steps of order 3 (then 2, 1) evenly in log σ,
    from sigmas[0] to the last non-zero σ (where A1111's ends: it adds no final denoising step)."""
    nfe = len(sigmas) - 1
    t_start, t_end = _t(sigmas[0]), _t(sigmas[-2])
    m = nfe // 3 + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1, dtype=sigmas.dtype)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        t, t_next = ts[i], ts[i + 1]
        down, _ = ancestral_step(_sigma(t), _sigma(t_next))
        t_next_ = torch.minimum(t_end, _t(down))
        up = (_sigma(t_next) ** 2 - _sigma(t_next_) ** 2) ** 0.5
        x = yield from _dpm_solver_step(order, x, t, t_next_)
        x = x + up * noise(_sigma(t), _sigma(t_next))
    return x


class StepSizeController:
    """k-diffusion's PID controller for the adaptive step size (integral only by default): a step
    is accepted when its error lets the step grow by at least `accept_safety`."""

    def __init__(self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float,
                 accept_safety: float = 0.81, eps: float = 1e-8):
        self.h, self.accept_safety, self.eps = h, accept_safety, eps
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.errs: list[float] = []

    def propose_step(self, error: Tensor) -> bool:
        """Scale h by the limited factor of the last inverse errors; True if the step is accepted."""
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept


def _dpm_solver_pair(x: Tensor, t: Tensor, t_next: Tensor) -> Generator[tuple[Tensor, Tensor],
                                                                         tuple[Tensor, Tensor],
                                                                         tuple[Tensor, Tensor, Tensor]]:
    """DPM-Solver-2 (r1 = 1/3) and -3 from t to t_next sharing their first two evaluations:
    (x the model saw first, the 2nd-order result, the 3rd-order result)."""
    h = t_next - t
    r1, r2 = 1 / 3, 2 / 3
    s1, s2 = t + r1 * h, t + r2 * h
    x, eps = yield from _eps(x, t)
    _, eps_r1 = yield from _eps(x - _sigma(s1) * (r1 * h).expm1() * eps, s1)
    low = x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
    u2 = (x - _sigma(s2) * (r2 * h).expm1() * eps
          - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
    _, eps_r2 = yield from _eps(u2, s2)
    high = x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)
    return x, low, high


def dpm_adaptive(x: Tensor, sigmas: Tensor, noise: Noise, rtol: float = 0.05, atol: float = 0.0078,
                 h_init: float = 0.05, eta: float = ETA) -> Sampler:
    """DPM-Solver-23 with an adaptive step size (Lu et al., 2022), as k-diffusion's
    sample_dpm_adaptive (order 3, integral control, A1111's η = 1), from sigmas[0] to the last
    non-zero σ. Each try costs 3 model evaluations; a step whose 2nd- and 3rd-order results differ
    by more than the tolerance (rtol of the larger of |x|, atol at least; RMS over the whole batch)
    is tried again shorter. So the number of evaluations is known only at the end."""
    t, t_end = _t(sigmas[0]), _t(sigmas[-2])
    rtol_, atol_ = torch.tensor(rtol), torch.tensor(atol)
    x_prev = x
    pid = StepSizeController(abs(h_init), 0.0, 1.0, 0.0, 1.5 if eta else 3)
    while t < t_end - 1e-5:
        t_next = torch.minimum(t_end, t + pid.h)
        if eta:
            down, _ = ancestral_step(_sigma(t), _sigma(t_next), eta)
            t_down = torch.minimum(t_end, _t(down))
            up = (_sigma(t_next) ** 2 - _sigma(t_down) ** 2) ** 0.5
        else:
            t_down, up = t_next, 0.0
        x, low, high = yield from _dpm_solver_pair(x, t, t_down)
        delta = torch.maximum(atol_, rtol_ * torch.maximum(low.abs(), x_prev.abs()))
        error = torch.linalg.norm((low - high) / delta) / x.numel() ** 0.5
        if pid.propose_step(error):
            x_prev = low
            x = high + up * noise(_sigma(t), _sigma(t_next))
            t = t_next
    return x


# --- Restart (Xu et al., 2023), as A1111's sd_samplers_extra.restart_sampler ---

def _karras(n: int, low: float, high: float, rho: float = 7.0) -> Tensor:
    ramp = torch.linspace(0, 1, n)
    levels = (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho
    return torch.cat([levels, levels.new_zeros([1])])


def restart_steps(sigmas: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Restart's (σ, σ_next) pairs: at 20+ steps, Karras levels with 9 (36+ steps: steps // 4) of
    the steps spent going back up from σ ≈ 0.1 to σ ≈ 2, once (twice) — A1111's automatic restart list."""
    steps = sigmas.shape[0] - 1
    restarts: dict[float, list[int]] = {}
    if steps >= 20:
        restart, times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = _karras(steps - restart * times, float(sigmas[-2]), float(sigmas[0]))
        restarts = {0.1: [restart + 1, times, 2]}
    at = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restarts.items()}
    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in at:
            count, times, high = at[i + 1]
            low_index, high_index = i + 1, int(torch.argmin(abs(sigmas - high), dim=0))
            if high_index < low_index:
                levels = _karras(count, float(sigmas[low_index]), float(sigmas[high_index]))[:-1]
                pairs.extend(list(itertools.pairwise(levels)) * times)
    return pairs


def restart(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampler:
    """Heun steps down, with jumps back up (re-noised) at the restart points."""
    last = None
    for old, new in restart_steps(sigmas):
        if last is not None and last < old:
            x = x + noise(old, new) * (old ** 2 - last ** 2) ** 0.5
        x, denoised = yield x, old
        d = to_d(x, old, denoised)
        if new == 0:
            x = x + d * (new - old)
        else:
            x_2, denoised_2 = yield x + d * (new - old), new
            x = x + (d + to_d(x_2, new, denoised_2)) / 2 * (new - old)
        last = new
    return x


SAMPLERS: dict[str, Callable[[Tensor, Tensor, Noise], Sampler]] = {
    "euler": euler, "euler_ancestral": euler_ancestral, "heun": heun, "dpm_2": dpm_2,
    "dpm_2_ancestral": dpm_2_ancestral, "lms": lms, "dpmpp_2s_ancestral": dpmpp_2s_ancestral,
    "dpmpp_sde": dpmpp_sde, "dpmpp_2m": dpmpp_2m, "dpmpp_2m_sde": dpmpp_2m_sde,
    "dpmpp_2m_sde_heun": dpmpp_2m_sde_heun, "dpmpp_3m_sde": dpmpp_3m_sde, "dpm_fast": dpm_fast,
    "restart": restart, "dpm_adaptive": dpm_adaptive,
}
ADAPTIVE = frozenset({"dpm_adaptive"})  # picks its noise levels from x as it runs: no plan ahead
BROWNIAN = frozenset({"dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"})


FirstDraw = Callable[[int, tuple[int, ...]], Tensor]  # (seed, shape) → that seed's first normal draw
_TREE_DRAW: ContextVar[FirstDraw | None] = ContextVar("kekong_brownian_draw", default=None)


def _install_tree_draw() -> None:
    """torchsde draws a tree's numbers with a torch CPU generator per internal seed; A1111 puts its own
    randn_local (the RNG source's first draw for that seed) in its place. Here that happens only
    inside a BrownianNoise built with a `draw` (a context variable, so other threads are unaffected)."""
    from torchsde._brownian import brownian_interval as module

    if getattr(module._randn, "kekong", False):
        return
    original = module._randn

    def randn(size, dtype, device, seed):
        draw = _TREE_DRAW.get()
        if draw is None:
            return original(size, dtype, device, seed)
        return draw(int(seed), tuple(size)).to(device=device, dtype=dtype)

    randn.kekong = True
    module._randn = randn


class BrownianNoise:
    """k-diffusion's BrownianTreeNoiseSampler. A list of seeds gives one tree per image (A1111's
    create_noise_sampler: an image's noise does not depend on the rest of its batch); one int seeds
    one tree over the whole batch (k-diffusion's and diffusers' default). `draw` makes the trees'
    numbers (A1111's RNG source); None keeps torchsde's own (torch's CPU generator = A1111's "CPU")."""

    def __init__(self, like: Tensor, sigma_min: Tensor, sigma_max: Tensor, seeds: int | list[int],
                 draw: FirstDraw | None = None):
        import torchsde

        low, high = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
        self.low, self.high, self.draw = low, high, draw
        self.batched = not isinstance(seeds, int)
        if self.batched and len(seeds) != like.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for a batch of {like.shape[0]}")
        w0 = torch.zeros_like(like[0] if self.batched else like)
        with self._drawing():
            self.trees = [torchsde.BrownianTree(low, w0, high, entropy=seed)
                          for seed in (seeds if self.batched else [seeds])]

    @contextmanager
    def _drawing(self) -> Iterator[None]:
        if self.draw is None:
            yield
            return
        _install_tree_draw()
        token = _TREE_DRAW.set(self.draw)
        try:
            yield
        finally:
            _TREE_DRAW.reset(token)

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        a, b, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        a, b = a.clamp(self.low, self.high), b.clamp(self.low, self.high)  # σ recomputed from log σ may stray by 1 ulp
        with self._drawing():
            w = torch.stack([tree(a, b) for tree in self.trees]) * sign
        return (w if self.batched else w[0]) / (t1 - t0).abs().sqrt()

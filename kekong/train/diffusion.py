"""What base and ControlNet training share: the noise schedule (SD's), cached prompt embeddings
(encoded by the same code generation uses), and the denoising loss."""

from __future__ import annotations

import numpy as np
import torch

from kekong.errors import ParameterError
from kekong.generation.text import encode

# SD 1.x's training schedule; generation builds its samplers from the same config.
SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "clip_sample": False, "prediction_type": "epsilon", "timestep_spacing": "leading",
}


def noise_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config({k: v for k, v in SCHEDULER_CONFIG.items() if not k.startswith("_")})


class PromptCache:
    """Prompt → embedding, encoded once (the text encoder is frozen)."""

    def __init__(self, base, prompts: list[str], batch: int = 128) -> None:
        self.index: dict[str, int] = {}
        unique = sorted(set(prompts) | {""})
        chunks = []
        with torch.no_grad():
            for start in range(0, len(unique), batch):
                chunks.append(encode(base, unique[start:start + batch]).embeds)
        self.embeds = torch.cat(chunks)
        self.index = {prompt: i for i, prompt in enumerate(unique)}

    def get(self, prompts: list[str]) -> torch.Tensor:
        return self.embeds[[self.index[p] for p in prompts]]


def rng_for(seed: int, step: int, micro: int) -> np.random.Generator:
    """The data RNG of one micro-batch: a resumed run draws what an unbroken one would."""
    return np.random.default_rng([seed, step, micro])


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, H, W) in [−1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, batch: int = 64) -> torch.Tensor:
    """All training targets → scaled latents (the VAE's mean: the model learns the clean signal)."""
    out = []
    for start in range(0, len(images), batch):
        out.append(vae.encode(to_pixels(images[start:start + batch])).latent_dist.mean)
    return torch.cat(out) * vae.config.scaling_factor


def sample_timesteps(batch: int, total: int, generator: torch.Generator, bias: str = "uniform") -> torch.Tensor:
    """Training timesteps. "cubic" (T2I-Adapter's schedule, t = (1 − u³)·T) favours high noise,
    where an image's layout is decided: a ControlNet learns to follow its condition sooner."""
    if bias == "uniform":
        return torch.randint(0, total, (batch,), generator=generator)
    if bias == "cubic":
        u = torch.rand(batch, generator=generator)
        return ((1 - u**3) * total).long().clamp(0, total - 1)
    raise ParameterError(f"timestep bias: unknown {bias!r} (uniform or cubic)")


TIMESTEP_BIASES = ("uniform", "cubic", "cubic-then-uniform")


def bias_at(bias: str, step: int, steps: int) -> str:
    """"cubic-then-uniform": cubic for the first two thirds of a run, uniform after — the layout
    is learnt first, then the shapes' edges, which form at lower noise. Measured on the shipped
    ControlNet: 500 more uniform steps gave the same IoU as 500 more cubic ones (0.798) and better
    shape colour (0.79 vs 0.73)."""
    if bias not in TIMESTEP_BIASES:
        raise ParameterError(f"timestep bias: unknown {bias!r} ({', '.join(TIMESTEP_BIASES)})")
    if bias == "cubic-then-uniform":
        return "cubic" if step < steps * 2 // 3 else "uniform"
    return bias


def min_snr_weights(scheduler, steps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-γ loss weights for epsilon prediction, min(SNR, γ)/SNR (Hang et al. 2023): the
    low-noise steps stop dominating the gradient, and training converges several times faster."""
    alphas = scheduler.alphas_cumprod[steps]
    snr = alphas / (1 - alphas)
    return torch.clamp(snr, max=gamma) / snr


def denoising_loss(unet, latents: torch.Tensor, embeds: torch.Tensor, generator: torch.Generator, scheduler,
                   controlnet=None, cond: torch.Tensor | None = None, offset_noise: float = 0.1,
                   timestep_bias: str = "uniform", snr_gamma: float | None = 5.0,
                   keep_control: torch.Tensor | None = None) -> torch.Tensor:
    """Epsilon-prediction MSE at a random timestep, min-SNR weighted. Offset noise (a per-channel
    constant added to the noise) lets the model reach flat dark or bright images, which plain
    noise makes hard. `keep_control` (N,) of 0/1: samples at 0 get no ControlNet residuals, so a
    trainable UNet decoder also keeps learning to draw without a condition."""
    batch = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator)
    if offset_noise:
        noise = noise + offset_noise * torch.randn((batch, latents.shape[1], 1, 1), generator=generator)
    steps = sample_timesteps(batch, scheduler.config.num_train_timesteps, generator, timestep_bias)
    noisy = scheduler.add_noise(latents, noise, steps)
    residuals = {}
    if controlnet is not None:
        down, mid = controlnet(noisy, steps, encoder_hidden_states=embeds, controlnet_cond=cond, return_dict=False)
        if keep_control is not None:
            keep = keep_control.to(noisy.dtype).view(-1, 1, 1, 1)
            down, mid = [residual * keep for residual in down], mid * keep
        residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
    prediction = unet(noisy, steps, encoder_hidden_states=embeds, return_dict=False, **residuals)[0]
    per_sample = (prediction - noise).pow(2).mean(dim=(1, 2, 3))
    if snr_gamma is not None:
        per_sample = per_sample * min_snr_weights(scheduler, steps, snr_gamma)
    return per_sample.mean()

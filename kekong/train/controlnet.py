"""`kekong train controlnet`: a ControlNet for any base model kekong loads.

As the paper builds it: a trainable copy of the base UNet's encoder (initialised from it),
joined to the locked base by zero-initialised convolutions, trained on (target, condition,
prompt) triples with the base frozen. A controllability metric is logged at each validation
(mean IoU between the condition's filled outline and where the generated image departs from
its background), so "sudden convergence" shows in the log as a jump.

Optionally the base UNet's decoder trains too (the original repo's `sd_locked = False` option):
the locked base can only draw what it learnt, and a small base draws blobs. Measured on the
shapes model (32 held-out outlines): after the locked ControlNet had converged, 300 more steps
with the decoder unlocked gave IoU 0.83 and shape colour 0.84; 300 more with the ControlNet
alone, 0.78 and 0.70. The ControlNet then belongs with that tuned UNet, so both are saved;
`control_dropout` trains a share of samples without the ControlNet, so the tuned base still
draws on its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from kekong.colours import delta_e, lab
from kekong.errors import KekongError, ParameterError
from kekong.io import save_image
from kekong.train.data import TrainingSet
from kekong.train.diffusion import PromptCache, bias_at, denoising_loss, encode_latents, noise_scheduler, rng_for
from kekong.train.runner import RunSettings, run_training

HINT_CHANNELS = (16, 32, 96, 256)  # ControlNet 1.x's hint encoder; one stride-2 conv per level after the first


def decoder_parts(unet) -> list[torch.nn.Module]:
    """What `unlock_decoder` trains: the up blocks and the output layers (the encoder, the mid
    block and the time embedding stay locked: the ControlNet is a copy of them)."""
    return [unet.up_blocks, unet.conv_norm_out, unet.conv_out]


def build_controlnet(base):
    """The ControlNet initialised from the base UNet's encoder (its zero convolutions are zero)."""
    from diffusers import ControlNetModel

    levels = int(math.log2(base.vae_scale)) + 1  # the hint encoder must downsample like the VAE
    return ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=HINT_CHANNELS[:levels])


def filled_region(condition: np.ndarray) -> np.ndarray:
    """Inside-or-on an outline map (white lines on black): flood the outside from the border."""
    lines = (condition.mean(axis=2) > 127).astype(np.uint8)
    h, w = lines.shape
    flood = lines.copy()
    mask = np.zeros((h + 2, w + 2), np.uint8)
    for y, x in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]:
        if flood[y, x] == 0:
            cv2.floodFill(flood, mask, (x, y), 2)
    return flood != 2


def departs_from_background(image: np.ndarray, background_rgb: np.ndarray, threshold: float = 30.0) -> np.ndarray:
    return delta_e(lab(image), lab(background_rgb)) > threshold


def border_colour(image: np.ndarray) -> np.ndarray:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(border, axis=0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def controllability(images: list[np.ndarray], targets: np.ndarray, conditions: np.ndarray) -> float:
    """Mean IoU of (generated pixels unlike the target's background) vs (filled condition)."""
    scores = [iou(departs_from_background(image, border_colour(target)), filled_region(condition))
              for image, target, condition in zip(images, targets, conditions, strict=True)]
    return float(np.mean(scores))


def train_controlnet(base, data: TrainingSet, settings: RunSettings, prompt_dropout: float = 0.5,
                     held_out: int = 8, cfg: float = 5.0, timestep_bias: str = "cubic-then-uniform",
                     prompts: PromptCache | None = None, unlock_decoder: bool = False,
                     control_dropout: float = 0.0, unlock_after: float = 0.5, controlnet=None) -> object:
    """Train and return the ControlNet; the last `held_out` samples are kept out for validation.

    As the paper does, half the prompts are dropped, so the ControlNet must read the layout from
    the condition itself; timesteps favour high noise, where the layout is decided, for the first
    two thirds of the run (`timestep_bias`). `prompts`: embeddings already encoded (the base stage's).
    `unlock_decoder`: base.unet's decoder trains too (in place; checkpointed with the ControlNet),
    from `unlock_after` (a share of the run) on. Unlock after the ControlNet has converged, or go
    on training a converged one (`controlnet=`): a decoder that trains early learns the data itself
    and the ControlNet's sudden convergence does not come (measured on the shapes model: held-out
    controllability 0.29 at step 500 unlocked from the start, ≈ 0.52 unlocked half-way; 0.72 locked).
    `control_dropout`: the share of samples trained without the ControlNet's residuals, once the
    decoder trains (before, such samples would teach nothing). `controlnet`: go on training this
    one (trained in place) instead of a new copy of the base's encoder."""
    if not data.conditions:
        raise ParameterError("data: the training set has no condition images")
    if not 0 <= control_dropout < 1:
        raise ParameterError(f"control_dropout must be in [0, 1), not {control_dropout}")
    if not 0 <= unlock_after < 1:
        raise ParameterError(f"unlock_after must be in [0, 1), not {unlock_after}")
    if unlock_decoder and next(base.unet.parameters()).dtype != torch.float32:
        raise KekongError(f"{base.name}: its UNet is held in {next(base.unet.parameters()).dtype} to save memory; "
                          "training its decoder needs float32 weights (set KEKONG_WEIGHTS=fp32)")
    base.unet.requires_grad_(False)
    base.vae.requires_grad_(False)
    torch.manual_seed(settings.seed)
    controlnet = controlnet if controlnet is not None else build_controlnet(base)
    modules = {"controlnet": controlnet}
    decoder = [p for part in decoder_parts(base.unet) for p in part.parameters()] if unlock_decoder else []
    unlock_step = int(unlock_after * settings.steps)
    for param in decoder:
        param.requires_grad_(True)  # so the optimizer holds them; locked again until unlock_step
    if decoder:
        modules["unet"] = base.unet
    train_count = len(data) - held_out
    latents = encode_latents(base.vae, data.targets[:train_count])
    prompts = prompts if prompts is not None else PromptCache(base, data.prompts)
    conditions = [torch.from_numpy(c).permute(0, 3, 1, 2).float() / 255 for c in data.conditions]
    scheduler = noise_scheduler()

    def loss_fn(step: int, micro: int) -> torch.Tensor:
        rng = rng_for(settings.seed, step, micro)
        picked = rng.integers(train_count, size=settings.batch_size)
        variant = rng.integers(len(conditions), size=settings.batch_size)
        cond = torch.stack([conditions[v][i] for v, i in zip(variant, picked, strict=True)])
        text = [("" if rng.random() < prompt_dropout else data.prompts[i]) for i in picked]
        unlocked = bool(decoder) and step >= unlock_step
        for param in decoder:
            param.requires_grad_(unlocked)  # no gradient: AdamW leaves the parameter as it is
        keep = torch.from_numpy(rng.random(settings.batch_size) >= control_dropout) \
            if unlocked and control_dropout else None
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        return denoising_loss(base.unet, latents[picked], prompts.get(text), generator, scheduler,
                              controlnet=controlnet, cond=cond, keep_control=keep,
                              timestep_bias=bias_at(timestep_bias, step, settings.steps))

    def validate(step: int) -> dict[str, float]:
        images = generate_held_out(base, controlnet, data, range(train_count, len(data)), cfg=cfg)
        grid = np.concatenate([np.concatenate([data.conditions[0][i], image], axis=0)
                               for i, image in zip(range(train_count, len(data)), images, strict=True)], axis=1)
        save_image(grid, Path(settings.out) / f"validation-{step:06d}.png")
        return {"controllability": controllability(images, data.targets[train_count:],
                                                   data.conditions[0][train_count:])}

    try:
        run_training(settings, "controlnet", modules, loss_fn, validate if held_out else None)
    finally:
        base.unet.requires_grad_(False)
    return controlnet


def generate_held_out(base, controlnet, data: TrainingSet, indices, cfg: float = 5.0, steps: int = 20) -> list:
    """Generate each held-out sample from its first condition and prompt (seed = its index)."""
    from kekong.generation.control import PreparedUnit, to_tensor
    from kekong.generation.pipeline import run_batch
    from kekong.request import ControlUnit, build_request

    size = data.targets.shape[1]
    images = []
    for index in indices:
        request = build_request(prompt=data.prompts[index], width=size, height=size, steps=steps, cfg_scale=cfg,
                                seed=int(index))
        unit = PreparedUnit(ControlUnit(module="none", image="held-out"), 0, controlnet, "training", "training",
                            f"held-out-{index}", to_tensor(data.conditions[0][index]))
        images.extend(run_batch(base, request, [unit], [int(index)], None, None))
    return images


def save_controlnet(controlnet, folder: Path) -> Path:
    controlnet.save_pretrained(folder)
    return Path(folder)


def save_tuned_base(base, folder: Path) -> Path:
    """A copy of the base's diffusers folder with the UNet that trained beside the ControlNet."""
    import shutil

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base.ref.path, folder, ignore=shutil.ignore_patterns("unet"))
    base.unet.save_pretrained(folder / "unet")
    return folder

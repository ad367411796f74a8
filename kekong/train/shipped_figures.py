"""The shipped pose model, kekong-figures + kekong-figures-openpose (`make shipped-model`'s second half).

A base of its own, warm-started from the shapes base the same run has just trained (both draw
flat colours named in the prompt, so the UNet starts knowing its colour words): the VAE and UNet
train on in place on synthetic figures (kekong.train.figures), the prompt window widened to 48
tokens (a three-person prompt has up to 46); then an OpenPose ControlNet on the locked base,
then the decoder stage as for the shapes model. Installed as float16 folders in kekong/weights/,
the base naming the ControlNet for every openpose module and recommending CFG 2.
Re-running resumes from the run folder's checkpoints.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np

from kekong.models.refs import SHIPPED_DIR

BASE_NAME, CONTROL_NAME = "kekong-figures", "kekong-figures-openpose"
POSE_MODULES = ("none", "openpose", "openpose_full", "openpose_face", "openpose_faceonly", "openpose_hand")
SAMPLES, SIZE, MAX_TOKENS = 8_000, 64, 48
VAE_STEPS, UNET_STEPS, CONTROL_STEPS, DECODER_STEPS = 600, 1000, 700, 400
RECOMMENDED = {"cfg_scale": 2.0}


def figures_set(count: int, size: int, seed: int):
    """The synthetic figures in memory: targets, prompts, one condition (the pose map)."""
    from kekong.train.data import TrainingSet
    from kekong.train.figures import random_sample

    rng = np.random.default_rng(seed)
    samples = [random_sample(rng, size) for _ in range(count)]
    return TrainingSet(np.stack([s.target for s in samples]), [s.prompt for s in samples],
                       [np.stack([s.control for s in samples])])


def retrain_figures(run: Path, shapes_base, install_weights: bool = True, samples: int = SAMPLES,
                    vae_steps: int = VAE_STEPS, unet_steps: int = UNET_STEPS, control_steps: int = CONTROL_STEPS,
                    decoder_steps: int = DECODER_STEPS, progress: bool = True) -> dict:
    """Train the figures base from `shapes_base` (a loaded BaseModel, not changed) and its pose ControlNet."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from kekong.models.load import load_base
    from kekong.train.base import BaseConfig, encode_prompts, load_text_encoder, save_base, train_unet, train_vae
    from kekong.train.controlnet import train_controlnet
    from kekong.train.runner import RunSettings
    from kekong.train.stages import tune_decoder

    started, stages = time.time(), {}
    data = figures_set(samples, SIZE, seed=0)
    prompts = encode_prompts(data.prompts, MAX_TOKENS)  # once, for every stage
    stages["data"] = time.time() - started
    model = run / "base" / "model"
    if not (model / "unet" / "config.json").is_file():
        vae_folder = run / "base" / "vae"
        if (vae_folder / "config.json").is_file():
            vae = AutoencoderKL.from_pretrained(vae_folder).eval()
        else:
            vae = train_vae(data, RunSettings(run / "base" / "vae-run", vae_steps, batch_size=16, lr=5e-4,
                                              progress=progress), BaseConfig(), vae=copy.deepcopy(shapes_base.vae))
            vae.save_pretrained(vae_folder)
        stages["vae"] = time.time() - started - sum(stages.values())
        vae.requires_grad_(False)
        encoder, tokenizer = load_text_encoder(MAX_TOKENS)
        unet = UNet2DConditionModel.from_config(shapes_base.unet.config)
        unet.load_state_dict(shapes_base.unet.state_dict())
        unet = train_unet(data, RunSettings(run / "base" / "unet-run", unet_steps, lr=4e-4, progress=progress),
                          BaseConfig(), vae, encoder, tokenizer, prompts=prompts, unet=unet)
        save_base(model, unet, vae, max_tokens=MAX_TOKENS)
        stages["unet"] = time.time() - started - sum(stages.values())
    base = load_base(str(model))
    settings = RunSettings(run / "controlnet-run", control_steps, batch_size=32, lr=3e-4, validate_every=250,
                           progress=progress)
    controlnet = train_controlnet(base, data, settings, prompts=prompts, timestep_bias="cubic")
    stages["controlnet"] = time.time() - started - sum(stages.values())
    tune_decoder(base, controlnet, data, RunSettings(run / "decoder-run", decoder_steps, batch_size=32, lr=2e-4,
                                                     warmup=30, validate_every=200, progress=progress), prompts)
    stages["decoder"] = time.time() - started - sum(stages.values())
    timings = {"minutes": round((time.time() - started) / 60, 1),
               "stage_minutes": {k: round(v / 60, 1) for k, v in stages.items()}}
    if install_weights:
        install(base, controlnet)
        (run / "retrain.json").write_text(json.dumps(timings))
    return timings


def install(base, controlnet) -> None:
    """Both as float16 folders in kekong/weights/ (the ControlNet unscaled: weight 1 is its own)."""
    from kekong.models.load import CACHE
    from kekong.train.base import save_base
    from kekong.train.stages import forget_source

    target_base, target_control = SHIPPED_DIR / BASE_NAME, SHIPPED_DIR / CONTROL_NAME
    for folder in (target_base, target_control):
        shutil.rmtree(folder, ignore_errors=True)
    save_base(target_base, base.unet, base.vae, dict.fromkeys(POSE_MODULES, CONTROL_NAME), half=True,
              max_tokens=MAX_TOKENS, recommend=RECOMMENDED)
    copy.deepcopy(controlnet).half().save_pretrained(target_control)
    for config in [*target_base.glob("*/config.json"), target_control / "config.json"]:
        forget_source(config)
    CACHE.clear()

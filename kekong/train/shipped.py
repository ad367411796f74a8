"""Retrain the shipped kekong-shapes model from nothing (`make shipped-model`, under 60 min on 2 CPU
cores): synthetic shapes → base (VAE + UNet, MiniLM text encoder) → outline ControlNet (trained
on crisp and scribbled outlines, so it serves both), the base UNet's decoder unlocked for the
second half of that stage (a fifth of those samples without the ControlNet, so the tuned base
still draws on its own) → float16
folders in kekong/weights/. Step counts fill the hour at the measured pace (BENCHMARKS.md).

Re-running resumes from the run folder's checkpoints.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path

from kekong.models.refs import SHIPPED_DIR

BASE_NAME, CONTROL_NAME = "kekong-shapes", "kekong-shapes-outline"
# Detectors whose maps are white lines on black, like the outlines the ControlNet learnt from.
OUTLINE_MODULES = ("none", "scribble", "scribble_sketch", "scribble_xdog", "scribble_hed", "invert", "threshold",
                   "canny", "lineart_standard", "softedge_dog")
SAMPLES, SIZE = 16_000, 64
VAE_STEPS, UNET_STEPS, CONTROL_STEPS = 1200, 1300, 1300
CONTROL_DROPOUT = 0.2


def retrain(run: Path, install: bool = True, samples: int = SAMPLES, vae_steps: int = VAE_STEPS,
            unet_steps: int = UNET_STEPS, control_steps: int = CONTROL_STEPS, progress: bool = True) -> dict:
    from kekong.models.load import CACHE, load_base
    from kekong.train.base import encode_prompts, save_base, train_base
    from kekong.train.controlnet import train_controlnet
    from kekong.train.data import shapes_set
    from kekong.train.runner import RunSettings

    started = time.time()
    data = shapes_set(samples, SIZE, seed=0)
    prompts = encode_prompts(data.prompts)  # once for both stages
    model = train_base(data, run / "base", vae_steps, unet_steps, progress=progress, prompts=prompts)
    base = load_base(str(model))
    settings = RunSettings(run / "controlnet-run", control_steps, batch_size=32, lr=3e-4, validate_every=250,
                           progress=progress)
    controlnet = train_controlnet(base, data, settings, prompts=prompts, unlock_decoder=True,
                                  control_dropout=CONTROL_DROPOUT)
    timings = {"minutes": round((time.time() - started) / 60, 1)}
    if install:
        target_base, target_control = SHIPPED_DIR / BASE_NAME, SHIPPED_DIR / CONTROL_NAME
        for folder in (target_base, target_control):
            shutil.rmtree(folder, ignore_errors=True)
        save_base(target_base, base.unet, base.vae, {m: CONTROL_NAME for m in OUTLINE_MODULES}, half=True)
        copy.deepcopy(controlnet).half().save_pretrained(target_control)
        CACHE.clear()
        (run / "retrain.json").write_text(json.dumps(timings))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, default=Path("runs/kekong-shapes"))
    parser.add_argument("--no-install", action="store_true", help="leave kekong/weights alone")
    args = parser.parse_args()
    print(retrain(args.run, install=not args.no_install, progress=sys.stderr.isatty()))


if __name__ == "__main__":
    main()

"""Stages both shipped models share: the decoder stage, and cleaning a config before it ships."""

from __future__ import annotations

import json
from pathlib import Path


def tune_decoder(base, controlnet, data, settings, prompts) -> None:
    """The last stage: the ControlNet goes on training with base.unet's decoder unlocked (both in place)."""
    from kekong.train.controlnet import train_controlnet

    train_controlnet(base, data, settings, prompts=prompts, timestep_bias="uniform", unlock_decoder=True,
                     unlock_after=0.0, controlnet=controlnet)


def forget_source(config: Path) -> None:
    """diffusers records where a model was loaded from (`_name_or_path`): a path on the training machine."""
    fields = json.loads(config.read_text())
    fields.pop("_name_or_path", None)
    config.write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")

"""Offloading what a generation does not use most of the time: the text encoders.

They run once per batch, at its start; the UNet and ControlNets run every step. With
`KEKONG_OFFLOAD=text-encoders` their weights live on disk between uses (diffusers' group
offloading with a disk path, leaf by leaf: each layer is read back for its own forward pass and
released after), so SDXL's 3.3 GB of fp32 text encoders do not sit in memory while it samples.
There is no second device on a CPU machine, so disk is where "off" is.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from kekong.errors import ParameterError

CHOICES = ("none", "text-encoders")
log = logging.getLogger(__name__)  # `kekong -v` shows where the encoders went


def setting() -> str:
    value = os.environ.get("KEKONG_OFFLOAD", "none").strip().lower()
    if value not in CHOICES:
        raise ParameterError(f"KEKONG_OFFLOAD={value!r}; expected one of: {', '.join(CHOICES)}")
    return value


def folder() -> Path:
    from kekong.models.weights import models_dir

    return Path(os.environ.get("KEKONG_OFFLOAD_DIR") or models_dir().parent / "offload")


def text_encoders(encoders: list[Any], model_path: Path) -> list[Any]:
    """Offload the encoders to disk when the setting asks for it (per model, per encoder)."""
    if setting() != "text-encoders":
        return encoders
    from diffusers.hooks import apply_group_offloading

    key = hashlib.sha256(str(Path(model_path).resolve()).encode()).hexdigest()[:16]
    log.info("offload: %d text encoder(s) of %s live on disk between uses (%s; KEKONG_OFFLOAD=text-encoders)",
             len(encoders), Path(model_path).name, folder() / f"{key}-*")
    for index, encoder in enumerate(encoders):
        apply_group_offloading(encoder, onload_device="cpu", offload_device="cpu", offload_type="leaf_level",
                               offload_to_disk_path=str(folder() / f"{key}-{index}"))
    return encoders

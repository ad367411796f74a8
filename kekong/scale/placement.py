"""Which device a Ray actor computes on. Ray reserves `--gpus-per-worker` for each actor and tells
it which GPUs are its own (`ray.get_gpu_ids()`); the actor makes the first of them torch's current
CUDA device, so two actors on one machine never share a GPU they were not given.

kekong's generation runs its tensors on the CPU today (no part of the pipeline moves a model to a
GPU), so the device is chosen, made current and recorded, and the work itself stays where the
pipeline puts it."""

from __future__ import annotations

import os
from typing import Any


def gpu_index(ids: list[Any], visible: str | None) -> int:
    """torch's index of Ray's first GPU id: Ray narrows CUDA_VISIBLE_DEVICES to the actor's GPUs
    (then its first GPU is index 0 in the list); where that is switched off, the id itself."""
    first = str(ids[0])
    shown = [part.strip() for part in (visible or "").split(",") if part.strip()]
    return shown.index(first) if first in shown else int(first)


def place(gpus: float) -> str:
    """In an actor: 'cuda:N' (made torch's current device) when GPUs were reserved and CUDA is
    there, else 'cpu'."""
    if not gpus:
        return "cpu"
    import ray
    import torch

    ids = ray.get_gpu_ids()
    if not ids or not torch.cuda.is_available():
        return "cpu"
    index = gpu_index(ids, os.environ.get("CUDA_VISIBLE_DEVICES"))
    torch.cuda.set_device(index)
    return f"cuda:{index}"

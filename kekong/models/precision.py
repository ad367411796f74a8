"""Half-precision storage, full-precision compute: how SDXL + a ControlNet fits in memory on CPU.

Checkpoints ship in fp16. Kept as they are — instead of widened to fp32 — a component takes half
the memory; each Linear/Conv layer's weights are widened just for its own forward pass
(diffusers' layerwise-casting hooks) and the arithmetic stays fp32, which CPUs run fastest and
which keeps the results as exact as fp32 weights of fp16 values can be. Norms, embeddings and
biases of other layers are small and stay fp32.

`KEKONG_WEIGHTS` chooses: `auto` (default) keeps a component in half precision when its fp32
weights would take more than a sixth of this machine's memory — the SDXL UNet and ControlNets,
not SD 1.5's parts, which run a little faster in plain fp32 — `fp32`, `fp16` or `bf16` for all.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from kekong.errors import ParameterError

log = logging.getLogger(__name__)  # each storage decision, with its reason (`kekong -v` shows them)
CHOICES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
AUTO_FRACTION = 1 / 6
# the layers diffusers' hooks widen (its _GO_LC_SUPPORTED_PYTORCH_LAYERS)
_HOOKED = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d,
           torch.nn.ConvTranspose3d, torch.nn.Linear)


def setting() -> str:
    value = os.environ.get("KEKONG_WEIGHTS", "auto").strip().lower()
    if value not in (*CHOICES, "auto"):
        raise ParameterError(f"KEKONG_WEIGHTS={value!r}; expected auto, fp32, fp16 or bf16")
    return value


def total_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def storage_dtype(fp32_bytes: int, what: str = "a component") -> torch.dtype | None:
    """The storage dtype for a component whose weights take `fp32_bytes` in fp32; None = fp32."""
    mode = setting()
    if mode != "auto":
        log.info("precision: %s stored as %s (KEKONG_WEIGHTS=%s)", what, mode, mode)
        return CHOICES[mode]
    gib, budget = fp32_bytes / 2**30, AUTO_FRACTION * total_memory() / 2**30
    if fp32_bytes > AUTO_FRACTION * total_memory():
        log.info("precision: %s stored as fp16, computed in fp32: its fp32 weights (%.2f GiB) exceed a sixth of "
                 "memory (%.2f GiB; KEKONG_WEIGHTS=auto)", what, gib, budget)
        return torch.float16
    log.info("precision: %s kept in fp32: its weights (%.2f GiB) fit in a sixth of memory (%.2f GiB; "
             "KEKONG_WEIGHTS=auto)", what, gib, budget)
    return None


def safetensors_fp32_bytes(folder: Path) -> int:
    """What a diffusers component folder's weights take in fp32, read from the file headers only."""
    from safetensors import safe_open

    total = 0
    for path in Path(folder).glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                shape = handle.get_slice(key).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += 4 * count
    return total


def model_fp32_bytes(model: torch.nn.Module) -> int:
    return 4 * sum(p.numel() for p in model.parameters())


def keep_in(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    """Store the Linear/Conv weights of `model` in `dtype` and compute in fp32; None: plain fp32."""
    if dtype is None:
        return model.float()
    from diffusers.hooks import apply_layerwise_casting

    for module in model.modules():  # everything the hooks do not widen computes from fp32 weights
        if isinstance(module, _HOOKED):
            continue
        for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            if tensor.is_floating_point() and tensor.dtype != torch.float32:
                tensor.data = tensor.data.float()
    # each hooked layer is stored in `dtype` and widened to fp32 around its own forward
    apply_layerwise_casting(model, storage_dtype=dtype, compute_dtype=torch.float32, skip_modules_pattern=(),
                            skip_modules_classes=())
    log.info("precision: %s holds its Linear/Conv weights as %s and computes in float32", type(model).__name__,
             str(dtype).removeprefix("torch."))
    model.kekong_storage = dtype
    return model


def stored_as(model: torch.nn.Module) -> torch.dtype:
    return getattr(model, "kekong_storage", torch.float32)

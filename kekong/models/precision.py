"""Half-precision storage, full-precision compute: how SDXL + a ControlNet fits in memory on CPU.

Checkpoints ship in fp16. Kept as they are — instead of widened to fp32 — a component takes half
the memory; each Linear/Conv layer's weights are widened just for its own forward pass (into a
per-thread fp32 scratch buffer: `keep_in`, `widened`) and the arithmetic stays fp32, which CPUs run fastest and
which keeps the results as exact as fp32 weights of fp16 values can be. Norms, embeddings and
biases of other layers are small and stay fp32.

`KEKONG_WEIGHTS` chooses: `auto` (default) keeps a component in half precision when its fp32
weights would take more than a sixth of this machine's memory — the SDXL UNet and ControlNets,
not SD 1.5's parts, which run a little faster in plain fp32 — `fp32`, `fp16` or `bf16` for all.

`KEKONG_COMPUTE=bf16` trades exactness for speed where the CPU has bf16 instructions
(avx512_bf16 or AMX): the denoisers' (UNet's, ControlNets') conv and linear weights are stored
in bf16 and they run under bf16 autocast — 0.59× the fp32 step time of an SD 1.5-size UNet on a
Zen 4 core, half the memory, ≈ 1% relative error per UNet call (BENCHMARKS.md). The VAE and text
encoders keep the storage rule above and fp32 arithmetic. Default `fp32`: the same image on
every machine.
"""

from __future__ import annotations

import logging
import os
import threading
import types
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


COMPUTE_CHOICES = ("fp32", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def compute_setting() -> str:
    """`KEKONG_COMPUTE`: the denoisers' arithmetic, fp32 (default) or bf16 (refused on a CPU without it)."""
    value = os.environ.get("KEKONG_COMPUTE", "fp32").strip().lower()
    if value not in COMPUTE_CHOICES:
        raise ParameterError(f"KEKONG_COMPUTE={value!r}; expected fp32 or bf16")
    if value == "bf16" and not cpu_has_bf16():
        raise ParameterError("KEKONG_COMPUTE=bf16 needs a CPU with bf16 instructions (avx512_bf16 or amx_bf16); "
                             "this one has neither, so bf16 would be emulated and slower than fp32")
    return value


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in BF16_FLAGS)


def for_denoiser(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    """A UNet or ControlNet as the settings want it: in bf16 arithmetic under KEKONG_COMPUTE=bf16,
    else stored in `dtype` with fp32 compute (`keep_in`)."""
    if compute_setting() != "bf16":
        return keep_in(model, dtype)
    for module in model.modules():  # conv and linear weights in bf16; norms and embeddings in fp32 (CPU
        bf16 = isinstance(module, _HOOKED)  # group norm takes bf16 input with fp32 parameters, not the reverse)
        for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(torch.bfloat16 if bf16 else torch.float32)
    forward = model.forward

    def bf16_forward(*args: object, **kwargs: object) -> object:
        # autocast, not only bf16 weights: fp32 residuals, LoRA and IP-Adapter layers meet bf16 ones in one op
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return _to_fp32(forward(*args, **kwargs))

    model.forward = bf16_forward  # once, at load: the cached model stays as it is from then on
    model.kekong_storage = model.kekong_compute = torch.bfloat16
    log.info("precision: %s stored and computed in bfloat16 (KEKONG_COMPUTE=bf16)", type(model).__name__)
    return model


def _to_fp32(value: object) -> object:
    """A model's output with its floating tensors widened (the sampler's arithmetic stays fp32)."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_to_fp32(item) for item in value)
    if isinstance(value, dict):  # diffusers' BaseOutput is an OrderedDict dataclass: update it in place
        for key in list(value.keys()):
            value[key] = _to_fp32(value[key])
        return value
    return value


def compute_of(model: torch.nn.Module) -> torch.dtype:
    return getattr(model, "kekong_compute", torch.float32)


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
    """Store the Linear/Conv weights of `model` in `dtype` and compute in fp32; None: plain fp32.

    Linear and Conv2d layers (all of a UNet's, ControlNet's and VAE's weight) widen their weight once
    per forward into fp32 (a big one into a per-thread scratch buffer: `widened`) — one copy, nothing
    written back, and no shared state changed, so concurrent calls are safe. diffusers'
    layerwise-casting hooks, which the rarer layer types keep, cast the whole layer up and back
    down around every call (weight and bias, two copies each): that round trip was a third of an
    fp16-stored SD 1.5 step."""
    if dtype is None:
        return model.float()
    rare = []
    for module in model.modules():
        if type(module) in (torch.nn.Linear, torch.nn.Conv2d):  # subclasses may have forwards of their own
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.float()  # small: stays fp32, never widened per call
            module.forward = types.MethodType(_wide_linear if isinstance(module, torch.nn.Linear) else _wide_conv,
                                              module)
            continue
        if isinstance(module, _HOOKED):
            rare.append(module)
            continue
        for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            if tensor.is_floating_point() and tensor.dtype != torch.float32:
                tensor.data = tensor.data.float()  # norms, embeddings: computed from fp32 weights
    from diffusers.hooks.layerwise_casting import apply_layerwise_casting_hook

    for module in rare:  # the other conv types: stored in `dtype`, widened around their own forward by diffusers' hooks
        apply_layerwise_casting_hook(module, dtype, torch.float32, False)
    # diffusers' `model.dtype` is a layerwise-casting hook's compute dtype where one is attached, else the first
    # weight's: without this weightless marker an fp16-stored UNet said float16, and diffusers cast to it (its
    # IP-Adapter loading ends with `self.to(dtype=self.dtype)`: the whole UNet to fp16, then a dtype error)
    marker = torch.nn.Module()
    apply_layerwise_casting_hook(marker, dtype, torch.float32, False)
    model.add_module("kekong_fp32_compute", marker)
    log.info("precision: %s holds its Linear/Conv weights as %s and computes in float32", type(model).__name__,
             str(dtype).removeprefix("torch."))
    model.kekong_storage = dtype
    return model


def _wide_linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.linear(x, widened(self.weight), self.bias)


def _wide_conv(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return self._conv_forward(x, widened(self.weight), self.bias)


# A weight of at least this many elements is widened into a scratch buffer kept per thread: a new
# fp32 tensor over glibc's 32 MB mmap threshold is fresh pages every call, and their faults were
# most of half storage's fixed cost (a 1280×1280×3×3 weight: 34 ms allocated anew, 5 ms into the
# buffer; BENCHMARKS.md). Smaller ones come from the allocator's free lists as fast.
SCRATCH_MIN = 1 << 20
_scratch = threading.local()


def widened(weight: torch.Tensor) -> torch.Tensor:
    """`weight` in fp32 for one layer call. Without autograd, a big CPU weight lands in this thread's
    scratch buffer, valid until the thread widens the next one (a layer call uses it and is done);
    with autograd a new tensor, which backward may keep."""
    if weight.dtype == torch.float32:
        return weight
    if (weight.numel() < SCRATCH_MIN or torch.is_grad_enabled() or weight.device.type != "cpu"
            or not weight.is_contiguous()):
        return weight.float()
    key = "inference" if torch.is_inference_mode_enabled() else "plain"  # an inference tensor serves only there
    buffer = getattr(_scratch, key, None)
    if buffer is None or buffer.numel() < weight.numel():
        buffer = torch.empty(weight.numel(), dtype=torch.float32)
        setattr(_scratch, key, buffer)
    return buffer[: weight.numel()].view(weight.shape).copy_(weight)


def stored_as(model: torch.nn.Module) -> torch.dtype:
    return getattr(model, "kekong_storage", torch.float32)


def restore_storage(model: torch.nn.Module) -> None:
    """Narrow the widen-once layers of `model` back to its storage dtype, after something (diffusers'
    `model.to(dtype=model.dtype)`) widened them to fp32; the results do not change, the memory returns."""
    dtype = stored_as(model)
    if dtype == torch.float32:
        return
    for module in model.modules():
        forward = module.__dict__.get("forward")
        if getattr(forward, "__func__", None) in (_wide_linear, _wide_conv) and module.weight.dtype != dtype:
            module.weight.data = module.weight.data.to(dtype)

"""Starting noise exactly as A1111 makes it, so a seed from a shared infotext starts from the same
latents: its three random-number sources, variation seeds and seed resize.

Sources (A1111's "Random number generator source" setting, infotext key `RNG`):
- "CPU": torch's CPU generator seeded with the seed (also what diffusers does);
- "GPU": torch.randn on a CUDA device — A1111's default, so an infotext *without* an `RNG` key
  means this. It is Philox 4×32-10 plus a Box–Muller transform, which "NV" recomputes on the CPU;
  kekong computes "GPU" that way too, so no GPU is needed to reproduce it;
- "NV": that same CPU recomputation, by name.

Variation seeds (`subseed`, `subseed_strength`) spherically interpolate the seed's noise toward
the variation seed's; seed resize (`seed_resize_from_w/h`) makes the noise for another size and
pastes it, centred, into noise of the real size — so an image's composition survives a change of
resolution. The samplers' later noise continues each image's generator (A1111's ImageRNG.next():
the draws after the starting noise, Philox for "GPU"/"NV", torch's CPU generator for "CPU"), and
the SDE samplers' Brownian trees draw from the same source (A1111's randn_local, which it puts in
place of torchsde's generator). With an eta noise seed delta (A1111's `eta_noise_seed_delta` option,
infotext `ENSD`), the draws after the starting noise come from a fresh generator for seed + delta, as
A1111's ImageRNG.first() replaces its generators; the Brownian trees keep the image's seed, as A1111's do.
"""

from __future__ import annotations

import numpy as np
import torch

from kekong.request import RngSource

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_TWO_POW32_INV = np.float32(2.3283064e-10)
_TWO_POW32_INV_2PI = np.float32(2.3283064e-10 * 6.2831855)


class Philox:
    """torch.randn(..., device="cuda") reproduced on the CPU: each call uses the next Philox
    subsequence (offset) and one counter per output number."""

    def __init__(self, seed: int):
        self.seed = seed
        self.offset = 0

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape))
        counter = np.zeros((4, count), np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(count, dtype=np.uint32)
        self.offset += 1
        key = np.full(count, self.seed, np.uint64).view(np.uint32).reshape(-1, 2).T.copy()  # (low, high) words
        for round_ in range(10):
            if round_:
                key[0] += np.uint32(_PHILOX_W[0])
                key[1] += np.uint32(_PHILOX_W[1])
            counter = _philox_round(counter, key)
        return _box_muller(counter[0], counter[1]).reshape(shape)


def _high_low(product: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (product >> np.uint64(32)).astype(np.uint32), (product & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _philox_round(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    high0, low0 = _high_low(counter[0].astype(np.uint64) * np.uint64(_PHILOX_M[0]))
    high2, low2 = _high_low(counter[2].astype(np.uint64) * np.uint64(_PHILOX_M[1]))
    return np.stack([high2 ^ counter[1] ^ key[0], low2, high0 ^ counter[3] ^ key[1], low0])


def _box_muller(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The first of Box–Muller's two outputs, in float32 as CUDA computes it."""
    with np.errstate(over="ignore"):
        u = x * _TWO_POW32_INV + _TWO_POW32_INV / 2
        v = y * _TWO_POW32_INV_2PI + _TWO_POW32_INV_2PI / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


def randn(source: RngSource, seed: int, shape: tuple[int, ...], generator=None) -> torch.Tensor:
    """Noise of `shape` for `seed`; with `generator`, its next draw instead of a fresh one."""
    if source == RngSource.CPU:
        return torch.randn(shape, generator=generator or torch.Generator().manual_seed(seed))
    return torch.from_numpy((generator or Philox(seed)).randn(shape))


def new_generator(source: RngSource, seed: int) -> torch.Generator | Philox:
    """A fresh chain of draws for `seed` (A1111's create_generator)."""
    return torch.Generator().manual_seed(seed) if source == RngSource.CPU else Philox(seed)


def next_noise(generators: list[torch.Generator | Philox], shape: tuple[int, ...]) -> torch.Tensor:
    """Each image's next draw of `shape`, stacked (A1111's ImageRNG.next after the first)."""
    return torch.stack([torch.randn(shape, generator=g) if isinstance(g, torch.Generator)
                        else torch.from_numpy(g.randn(shape)) for g in generators])


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's spherical interpolation for variation seeds — including its normalisation along
    dim 1 of a (C, H, W) tensor, which is what makes the same seeds give the same noise there."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * strength + high * (1 - strength)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    return (torch.sin((1.0 - strength) * omega) / sin_omega).unsqueeze(1) * low + \
        (torch.sin(strength * omega) / sin_omega).unsqueeze(1) * high


def initial_noise(source: RngSource, seeds: list[int], shape: tuple[int, int, int], subseeds: list[int] | None = None,
                  subseed_strength: float = 0.0, resize_from: tuple[int, int] = (0, 0), ensd: int = 0) \
        -> tuple[torch.Tensor, list[torch.Generator | Philox]]:
    """(starting noise (B, C, H, W), each image's generator, to continue for the sampler's later
    noise: a torch CPU generator for "CPU", Philox for "GPU"/"NV", each drawn from once).

    `shape` is one image's latent shape; `resize_from` the (height, width) in latent cells to make
    the noise for (pixels // 8 for SD), (0, 0) = off; `ensd` ≠ 0: the generators returned start afresh
    at seed + ensd (A1111's eta noise seed delta)."""
    resized = resize_from[0] > 0 and resize_from[1] > 0
    noise_shape = (shape[0], *resize_from) if resized else shape
    images, generators = [], []
    for index, seed in enumerate(seeds):
        chain = new_generator(source, seed)
        noise = randn(source, seed, noise_shape) if resized else randn(source, seed, shape, chain)
        if subseeds is not None and subseed_strength != 0:
            subseed = subseeds[index] if index < len(subseeds) else 0
            noise = slerp(subseed_strength, noise, randn(source, subseed, noise_shape))
        if resized:
            full = randn(source, seed, shape, chain)
            noise = _paste_centred(noise, full)
        images.append(noise)
        generators.append(chain)
    if ensd:
        generators = [new_generator(source, seed + ensd) for seed in seeds]
    return torch.stack(images), generators


def _paste_centred(small: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """`small` centred on `full` (cropped where it is bigger), as A1111 pastes resized-seed noise."""
    dx, dy = (full.shape[2] - small.shape[2]) // 2, (full.shape[1] - small.shape[1]) // 2
    width = small.shape[2] if dx >= 0 else small.shape[2] + 2 * dx
    height = small.shape[1] if dy >= 0 else small.shape[1] + 2 * dy
    to_x, to_y, from_x, from_y = max(dx, 0), max(dy, 0), max(-dx, 0), max(-dy, 0)
    full[:, to_y:to_y + height, to_x:to_x + width] = small[:, from_y:from_y + height, from_x:from_x + width]
    return full

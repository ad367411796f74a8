"""Reference-only (sd-webui-controlnet's `reference_only`): no model — the UNet attends to a
reference picture while it draws.

Each step, the reference's latents, noised to the current timestep, go through the UNet once in
"write" mode: every self-attention layer keeps its input. Then the real pass runs in "read"
mode: each chosen self-attention layer attends over its own tokens *and* the kept reference
tokens. As in sd-webui-controlnet and diffusers' reference pipeline:
- the unit's weight picks the layers (`attention_auto_machine_weight`): layers ranked widest
  first, those whose rank fraction is below the weight read the reference (weight 1: all);
- `style_fidelity` blends, on the conditional rows, the reference-reading output with a plain
  self-attention output (1: the unconditional side keeps the reference, the strongest style
  transfer; 0: both sides read it);
- the guidance window (start/end) says in which steps it acts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Bank:
    mode: str = "off"  # "write" (reference pass), "read" (the real pass) or "off"
    uncond_rows: int = 0
    style_fidelity: float = 0.5
    weight: float = 1.0
    layers: list[ReferenceAttention] = field(default_factory=list)

    def clear(self) -> None:
        self.mode = "off"
        for layer in self.layers:
            layer.kept = []


class ReferenceAttention:
    """Wraps a self-attention layer's processor: keeps its input when writing, attends over it when reading."""

    def __init__(self, inner: Any, bank: Bank, rank: float) -> None:
        self.inner = inner
        self.bank = bank
        self.rank = rank  # this layer's place among all, widest first, in [0, 1)
        self.kept: list[torch.Tensor] = []

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None, *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        bank = self.bank
        if bank.mode == "write":
            self.kept.append(hidden_states.detach())
        if bank.mode != "read" or not self.kept or self.rank >= bank.weight:
            return self.inner(attn, hidden_states, encoder_hidden_states, *args, **kwargs)
        context = torch.cat([hidden_states, *self.kept], dim=1)
        self.kept = []
        out = self.inner(attn, hidden_states, context, *args, **kwargs)
        rows = bank.uncond_rows
        if rows and bank.style_fidelity > 0:
            plain = out.clone()
            plain[:rows] = self.inner(attn, hidden_states[:rows], None, *args, **kwargs)
            out = bank.style_fidelity * plain + (1 - bank.style_fidelity) * out
        return out


@dataclass
class Reference:
    """What the loop needs to run one reference unit."""

    unit: Any  # the ReferenceUnit (generation/units/reference.py: its guidance window)
    latents: torch.Tensor  # the reference picture's latents (1, C, h, w)
    noise: torch.Tensor
    bank: Bank = field(default_factory=Bank)


@contextmanager
def installed(unet: Any, bank: Bank) -> Iterator[None]:
    """Wrap every self-attention (attn1) processor for one request; the UNet is given back as it was."""
    processors = dict(unet.attn_processors)
    selves = [name for name in processors if name.endswith("attn1.processor")]
    widths = {name: _width(unet, name) for name in selves}
    ranked = sorted(selves, key=lambda name: -widths[name])
    wrapped = dict(processors)
    for place, name in enumerate(ranked):
        wrapped[name] = ReferenceAttention(processors[name], bank, place / len(ranked))
    bank.layers = [wrapped[name] for name in ranked]
    from kekong.models.patch import installed_processors

    with installed_processors(unet, wrapped):  # inside `patch.patched`: the model's lock is held
        yield


def _width(unet: Any, name: str) -> int:
    channels = unet.config.block_out_channels
    parts = name.split(".")
    if parts[0] == "mid_block":
        return channels[-1]
    if parts[0] == "up_blocks":
        return list(reversed(channels))[int(parts[1])]
    return channels[int(parts[1])]


@torch.no_grad()
def write(unet: Any, scheduler: Any, reference: Reference, t: torch.Tensor, embeds: torch.Tensor,
          added: dict | None, uncond_rows: int) -> None:
    """The reference pass of one step: its latents noised to `t`, through the UNet, inputs kept;
    the next UNet call reads them."""
    noised = scheduler.add_noise(reference.latents, reference.noise, t.reshape(1))
    latent_in = scheduler.scale_model_input(noised.repeat(embeds.shape[0], 1, 1, 1), t)
    bank = reference.bank
    bank.clear()
    bank.mode, bank.uncond_rows = "write", uncond_rows
    kwargs = {"added_cond_kwargs": added} if added is not None else {}
    unet(latent_in, t, encoder_hidden_states=embeds, return_dict=False, **kwargs)
    bank.mode = "read"

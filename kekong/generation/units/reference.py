"""Reference-only units (sd-webui-controlnet's `reference_only`): no model; each step the UNet's
self-attention also reads the reference picture's features (the hooks are in generation/reference.py).
One such unit per request."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from kekong.errors import ParameterError
from kekong.generation.reference import Bank, Reference, installed, write
from kekong.generation.units.base import Contribution, Loaded, Sampling, Step, Unit
from kekong.request import ControlUnit


@dataclass(eq=False)
class ReferenceUnit(Unit):
    reference: Reference | None = None  # during a denoising run: its latents, noise and attention bank
    kind = "reference_only"
    model_role = None

    @classmethod
    def claims(cls, unit: ControlUnit, loaded: Loaded) -> bool:
        return unit.module == "reference_only"

    @classmethod
    def prepare(cls, base: Any, unit: ControlUnit, index: int, loaded: Loaded) -> Unit:
        if unit.model is not None:  # no model: sd-webui-controlnet writes "None"
            raise ParameterError(f"control unit {index}: reference_only uses no model (model={unit.model!r})")
        return cls(unit, index, None, "None", "None", "")

    @classmethod
    @contextmanager
    def sampling(cls, units: Sequence[Unit], unet: Any, run: Sampling | None) -> Iterator[None]:
        """The reference picture's latents and noise, and the UNet's self-attention wrapped to read them."""
        if len(units) > 1:
            raise ParameterError("one reference_only unit per request (its picture is what the UNet attends to)")
        unit = units[0]
        latents = run.encode(unit.detected)
        noise = torch.randn((1, *run.shape[1:]), generator=torch.Generator().manual_seed(run.seed)).to(latents.dtype)
        unit.reference = Reference(unit, latents, noise, Bank(style_fidelity=float(unit.unit.params["style_fidelity"]),
                                                              weight=float(unit.unit.weight)))
        try:
            with installed(unet, unit.reference.bank):
                yield
        finally:
            unit.reference = None

    @classmethod
    def contribute(cls, units: Sequence[Unit], step: Step) -> Contribution | None:
        return None  # it acts through the attention hooks, in `before_unet`

    @classmethod
    def before_unet(cls, units: Sequence[Unit], step: Step, added: dict | None) -> None:
        """Inside its window, the reference pass that the UNet call reads; outside it, nothing to read."""
        reference = units[0].reference
        if units[0].active(step.index, step.total):
            write(step.unet, step.scheduler, reference, step.t, step.embeds, added, step.uncond_rows)
        else:
            reference.bank.clear()

    @classmethod
    def after_unet(cls, units: Sequence[Unit], step: Step) -> None:
        units[0].reference.bank.clear()  # the kept reference features are read: let them go

"""Fast mode (`fast: true`, `--fast`): training-free accelerations that trade a little fidelity for
speed, each switchable (`fast_parts`), off by default; the exact path is untouched when it is off.

- `deep_cache` (DeepCache, Ma et al. 2023, its shallowest branch): the UNet's deep features change
  slowly from one step to the next. On a full step the UNet runs whole and the input of the last
  layer of its last up block is kept; on the `fast_interval − 1` steps after it only the shallow
  branch runs — conv_in, that last layer (on the kept features and conv_in's fresh skip) and the
  output convolution, ≈ 1/10 of the UNet's FLOPs at SD 1.5 size. A ControlNet on such a step runs
  its shallow branch too (conv_in, conditioning embedding, first zero convolution): the only
  residual the shallow UNet reads.
- `control_reuse`: a ControlNet is evaluated on every `fast_interval`-th step only and its
  residuals are reused on the steps between (while the same units are active; a unit entering or
  leaving its window makes a fresh evaluation).

Both together: the ControlNet runs on full steps only and the shallow steps reuse its shallow
residuals. Full steps are step 1 and every `fast_interval`-th step after it; with a refiner the first
step after the switch is full (another UNet)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from kekong.choices import FastPart


@dataclass
class FastPlan:
    """One denoising run's fast-mode state: which steps are full, the kept deep features and residuals."""

    deep_cache: bool
    control_reuse: bool
    interval: int
    _deep: dict[int, Any] = field(default_factory=dict)  # id(UNet) → DeepFeatures from its last full step
    _controls: dict[tuple, Any] = field(default_factory=dict)  # (id(ControlNet), rows) → its DeepFeatures
    _control: dict[tuple, Any] = field(default_factory=dict)  # (kind, active units) → (step, Contribution)

    @classmethod
    def of(cls, request: Any) -> FastPlan | None:
        if not getattr(request, "fast", False):
            return None
        parts = set(request.fast_parts)
        return cls(FastPart.DEEP_CACHE in parts, FastPart.CONTROL_REUSE in parts, request.fast_interval)

    def full(self, index: int) -> bool:
        """Whether step `index` (0-based) evaluates everything afresh."""
        return index % self.interval == 0

    def shallow(self, index: int, unet: Any) -> bool:
        """Whether the UNet (and ControlNets) run their shallow branch only at this step."""
        return self.deep_cache and not self.full(index) and id(unet) in self._deep and has_branches(unet)

    def reused(self, kind: type, key: tuple, index: int) -> Any:
        """The contribution kept for `kind` with these active units, when this step may reuse it."""
        if not self.control_reuse or not getattr(kind, "reusable", False) or self.full(index):
            return None
        kept = self._control.get((kind, key))
        return kept[1] if kept is not None and index - kept[0] < self.interval else None

    def keep(self, kind: type, key: tuple, index: int, contribution: Any) -> None:
        if self.control_reuse and getattr(kind, "reusable", False):
            self._control[(kind, key)] = (index, contribution)

    @contextmanager
    def unet_call(self, unet: Any, index: int) -> Iterator[None]:
        """Around the step's UNet call: keep the deep features on a full step, use them on a shallow one."""
        if not self.deep_cache or not has_branches(unet):
            yield
        elif self.shallow(index, unet):
            with shallow_branch(unet, self._deep[id(unet)]):
                yield
        else:
            with keeping(unet) as kept:
                yield
            self._deep[id(unet)] = kept

    @contextmanager
    def control_call(self, controlnet: Any, shallow: bool, rows: int) -> Iterator[None]:
        """Around a ControlNet call on `rows` batch rows: its shallow branch on a shallow step, else a
        full call that records its blocks' shapes for the next shallow one."""
        key = (id(controlnet), rows)
        kept = self._controls.get(key)
        if shallow and kept is not None:
            with shallow_branch(controlnet, kept):
                yield
            return
        with keeping(controlnet) as kept:
            yield
        self._controls[key] = kept


def has_branches(model: Any) -> bool:
    """Whether a model has the UNet layout deep cache works on (≥ 2 down and up blocks, the last up
    block with ≥ 2 layers)."""
    ups = getattr(model, "up_blocks", ())
    return len(getattr(model, "down_blocks", ())) >= 2 and len(ups) >= 2 and len(ups[-1].resnets) >= 2


@dataclass
class DeepFeatures:
    """What a full step leaves for the shallow steps: the last up block's input, and the shapes of
    the deeper blocks' outputs (the shallow steps feed zeros of those shapes to the UNet's own loop)."""

    deep: torch.Tensor | None = None
    shapes: dict[str, Any] = field(default_factory=dict)


def _shapes(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.shape, output.dtype
    return tuple(_shapes(item) for item in output)


def _zeros(shapes: Any) -> Any:
    if isinstance(shapes[0], torch.Size):
        return torch.zeros(shapes[0], dtype=shapes[1])
    return tuple(_zeros(item) for item in shapes)


def _deeper(model: Any) -> list[tuple[str, torch.nn.Module]]:
    """The blocks a shallow step skips: every down block, the mid block and (on a UNet) every up
    block before the last."""
    blocks = [(f"down{i}", block) for i, block in enumerate(model.down_blocks)]
    if getattr(model, "mid_block", None) is not None:
        blocks.append(("mid", model.mid_block))
    blocks += [(f"up{i}", block) for i, block in enumerate(getattr(model, "up_blocks", ()))][:-1]
    return blocks


def _before_last_layer(block: torch.nn.Module) -> torch.nn.Module:
    """The layer whose output the last layer of an up block reads (its attention, else its resnet)."""
    attentions = getattr(block, "attentions", None)
    return attentions[-2] if attentions else block.resnets[-2]


@contextmanager
def keeping(model: Any) -> Iterator[DeepFeatures]:
    """A full call: record the skipped blocks' output shapes and (on a UNet) the input of the last
    layer of its last up block."""
    kept = DeepFeatures()
    handles = []
    for name, block in _deeper(model):
        def hook(module: Any, args: Any, output: Any, name: str = name) -> None:
            kept.shapes[name] = _shapes(output)
        handles.append(block.register_forward_hook(hook))
    if getattr(model, "up_blocks", None):
        def deep(module: Any, args: Any, output: Any) -> None:
            kept.deep = output[0] if isinstance(output, tuple) else output
        handles.append(_before_last_layer(model.up_blocks[-1]).register_forward_hook(deep))
    try:
        yield kept
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def shallow_branch(model: Any, kept: DeepFeatures) -> Iterator[None]:
    """The skipped blocks of `model` answer at once with zeros of the shapes its last full call
    recorded (nothing reads them but the model's own bookkeeping); on a UNet the last up block runs
    its last layer only, on the kept features and the first skip connection (conv_in's)."""
    changed = []
    for name, block in _deeper(model):
        def answer(*args: Any, shapes: Any = kept.shapes[name], **kwargs: Any) -> Any:
            return _zeros(shapes)

        changed.append((block, block.__dict__.get("forward")))
        block.forward = answer
    if getattr(model, "up_blocks", None):
        last = model.up_blocks[-1]
        full_forward = last.forward

        def last_layer(hidden_states: Any, res_hidden_states_tuple: tuple, *args: Any, **kwargs: Any) -> Any:
            layers = {name: getattr(last, name) for name in ("resnets", "attentions") if getattr(last, name, None)}
            for name, modules in layers.items():
                setattr(last, name, torch.nn.ModuleList([modules[-1]]))
            try:
                return full_forward(kept.deep, res_hidden_states_tuple[:1], *args, **kwargs)
            finally:
                for name, modules in layers.items():
                    setattr(last, name, modules)

        changed.append((last, last.__dict__.get("forward")))
        last.forward = last_layer
    try:
        yield
    finally:
        for block, original in changed:
            if original is None:
                del block.forward
            else:
                block.forward = original

"""The interface every kind of control unit implements, and what the loop hands it.

A kind is one class (a `Unit` subclass) in its own module, listed in `registry.KINDS`:
- `claims(unit, loaded)` / `prepare(base, unit, index, loaded)`: from the request's unit and the
  base model to a prepared unit (its model loaded and checked) — before any detector runs;
- `detect(...)`: the unit's image made into what it feeds (by default a control map fitted to the
  generation size, and its region mask);
- `contribute(units, step)`: what the kind's units add to the UNet call at one step.

Contributions are asked per kind, with all of that kind's units in request order, because a kind
may need them together: ControlNet units that share a model and an image share one evaluation (and
sum in that order, which bit-identical results depend on); IP-Adapters set every adapter's scale in
one call. Hooks with defaults that do nothing: `applied` (the whole generation: IP-Adapter's
attention processors), `sampling` (one denoising run: reference-only's attention hooks),
`before_unet` (with the UNet call's final inputs: reference-only's write pass) and `after_unet`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from kekong.detect.resolution import ResizeMode, fit_to_target, resize_map
from kekong.errors import ParameterError
from kekong.io import image_source, load_image, source_sha256
from kekong.request import ControlMode, ControlUnit

Loaded = Callable[[], tuple[Any, Any]]  # the unit's model file loaded (once, when first asked): (model, ModelRef)


@dataclass
class Step:
    """What a kind may read at one denoising step."""

    index: int  # 0-based
    total: int
    t: torch.Tensor
    latent_in: torch.Tensor  # the UNet's scaled input: [uncond rows] + conditional rows
    embeds: torch.Tensor  # the text conditioning, in the same row order
    added: dict | None  # SDXL's added conditioning
    batch: int  # images in the batch
    uncond_rows: int  # rows [0, uncond_rows) are unconditional (0 without CFG)
    parts: int  # AND parts of the prompt
    unet: Any
    scheduler: Any
    fast: Any = None  # fast mode's FastPlan (generation/fast.py); None: the exact path
    shallow: bool = False  # fast mode: only the shallow branch of the UNet (and of ControlNets) runs this step


@dataclass
class Contribution:
    """What the units add to one UNet call (None: nothing of that sort)."""

    down: list[torch.Tensor] | None = None  # residuals added after the UNet's down blocks (ControlNet)
    mid: torch.Tensor | None = None  # residual added after its mid block
    features: list[torch.Tensor] | None = None  # added inside the down blocks (T2I-Adapter)
    image_embeds: list[torch.Tensor] | None = None  # decoupled cross-attention inputs (IP-Adapter)

    def __add__(self, other: Contribution) -> Contribution:
        return Contribution(_sum(self.down, other.down), _sum(self.mid, other.mid),
                            _sum(self.features, other.features),
                            None if self.image_embeds is None and other.image_embeds is None else
                            [*(self.image_embeds or []), *(other.image_embeds or [])])


def _sum(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, list):
        return [x + y for x, y in zip(a, b, strict=True)]
    return a + b


@dataclass
class Sampling:
    """What a kind may need when one denoising run starts."""

    seed: int  # the batch's first seed
    shape: tuple[int, ...]  # the latents' (B, C, h, w)
    encode: Callable[[np.ndarray], torch.Tensor]  # an image → its latents (the VAE's mode)


@dataclass(eq=False)
class Unit:
    """One prepared control unit. Field order is kept so that `PreparedUnit(unit, index, model, label,
    name, key, cond)` still builds a ControlNet unit (training and benchmarks do)."""

    unit: ControlUnit
    index: int
    controlnet: Any  # the unit's model: ControlNet, T2I-Adapter, IP-Adapter; None for reference-only
    model_label: str  # `name [legacy hash]` as sd-webui-controlnet writes it
    model_name: str
    image_key: str  # sha256 of the control image + module + params: units sharing it share work
    cond: torch.Tensor | None = None  # (1, 3, H, W) in [0, 1] (inpaint: −1 where masked)
    region: torch.Tensor | None = None  # (1, 1, H, W) in [0, 1]
    detected: np.ndarray | None = None  # the map as generated against, for saving
    fill: np.ndarray | None = None  # inpaint_only+lama: the LaMa-filled picture, which the starting noise leans to

    kind: ClassVar[str] = ""
    model_role: ClassVar[str | None] = "controlnet"  # the models folder its file resolves in (None: no file)

    @classmethod
    def claims(cls, unit: ControlUnit, loaded: Loaded) -> bool:
        """Whether this kind handles the request's unit (`loaded()` loads the file it names)."""
        raise NotImplementedError

    @classmethod
    def prepare(cls, base: Any, unit: ControlUnit, index: int, loaded: Loaded) -> Unit:
        """The unit with its model loaded and checked against the base."""
        raise NotImplementedError

    @classmethod
    def contribute(cls, units: Sequence[Unit], step: Step) -> Contribution | None:
        """What this kind's units (all of them, in request order) add to the UNet call at `step`."""
        raise NotImplementedError

    @classmethod
    def applied(cls, units: Sequence[Unit], unet: Any) -> Any:
        """A context for the whole generation (inside the model's patch)."""
        return _nothing()

    @classmethod
    def sampling(cls, units: Sequence[Unit], unet: Any, run: Sampling | None) -> Any:
        """A context for one denoising run of `unet`."""
        return _nothing()

    @classmethod
    def before_unet(cls, units: Sequence[Unit], step: Step, added: dict | None) -> None:
        """Runs just before the UNet call, with its final added conditioning."""

    @classmethod
    def after_unet(cls, units: Sequence[Unit], step: Step) -> None:
        """Runs right after the UNet call."""

    def detect(self, image: np.ndarray, mask: np.ndarray | None, size_hw: tuple[int, int], reference: str) -> None:
        """The unit's map: detected (or taken as is), fitted to the generation size; its region mask."""
        from kekong.detect import get, run
        from kekong.detect.polarity import warn_if_inverted

        unit = self.unit
        if unit.module == "none":
            detected = image
            warn_if_inverted(image, self.model_name, self.index)  # a black-on-white sketch reads as a blob
        else:
            fills = mask is not None and get(unit.module).extra.get("fills_inpaint")  # inpaint_only+lama
            if fills and ResizeMode.parse(unit.resize_mode) == ResizeMode.RESIZE_AND_FILL:
                from kekong.detect.learned.lama import outpaint_canvas  # the extension's outpaint fix

                image, mask = outpaint_canvas(image, mask, size_hw)
            detected = run(unit.module, image, res=unit.res, pixel_perfect=unit.pixel_perfect,
                           target_hw=size_hw, resize_mode=unit.resize_mode, mask=mask, **unit.params).image
        fitted = fit_to_target(detected, size_hw, unit.resize_mode)
        if mask is not None and get(unit.module).extra.get("fills_inpaint"):  # inpaint_only+lama: the filled
            from kekong.detect.inpaint import inpaint_only  # picture, fed as inpaint_only feeds a picture

            self.fill = fitted
            fitted = inpaint_only(fitted, fit_to_target(mask, size_hw, unit.resize_mode))
        self.detected = fitted
        self.cond = to_tensor(fitted)
        self.image_key = f"{source_sha256(reference)}:{unit.module}:{sorted(unit.params.items())}:" \
                         f"{unit.res}:{unit.pixel_perfect}:{unit.resize_mode.value}:{self.model_name}"
        if unit.mask is not None:
            self.region = region_mask(load_image(image_source(unit.mask)), size_hw)

    @property
    def cfg_injection(self) -> bool:
        """Control on the conditional half of the CFG batch only."""
        return self.unit.mode == ControlMode.CONTROL

    def scales(self, count: int) -> list[float]:
        """Per-residual weights: flat, or sd-webui-controlnet's soft injection for the non-balanced modes."""
        weight = self.unit.weight
        if self.unit.mode == ControlMode.BALANCED:
            return [weight] * count
        soft = [weight * 0.825 ** float(12 - i) for i in range(13)]
        return soft[:count] if count <= 13 else [weight] * (count - 13) + soft

    def active(self, step: int, total: int) -> bool:
        """diffusers' window rule, so skipping is bit-identical to its multiply-by-zero."""
        outside = step / total < self.unit.start or (step + 1) / total > self.unit.end
        return not outside and self.unit.weight > 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def by_kind(units: Sequence[Unit]) -> list[tuple[type[Unit], list[Unit]]]:
    """Units grouped by the kind that contributes for them (the class defining `contribute`: a kind
    that only loads differently shares its parent's call), in order of first appearance."""
    groups: dict[type[Unit], list[Unit]] = {}
    for unit in units:
        owner = next(c for c in type(unit).__mro__ if "contribute" in vars(c))
        groups.setdefault(owner, []).append(unit)
    return list(groups.items())


@contextmanager
def applied(unet: Any, units: Sequence[Unit]) -> Iterator[None]:
    """Every kind's generation-wide context (IP-Adapter processors), for `units`."""
    with ExitStack() as stack:
        for kind, members in by_kind(units):
            stack.enter_context(kind.applied(members, unet))
        yield


def to_tensor(control: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 → float (1, 3, H, W) in [0, 1]; float maps (inpaint) pass through."""
    array = control.astype(np.float32) / 255.0 if control.dtype == np.uint8 else control.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def region_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> torch.Tensor:
    """A region mask image (white = the unit acts) → (1, 1, H, W) float in [0, 1]."""
    grey = mask.mean(axis=2).astype(np.float32) / 255.0
    if not grey.any():
        raise ParameterError("a control unit's region mask is all black: the unit would do nothing")
    fitted = resize_map((grey * 255).astype(np.uint8), size_hw).astype(np.float32) / 255.0
    return torch.from_numpy(fitted)[None, None]

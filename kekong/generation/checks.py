"""The compatibility step: what the request model cannot check alone, refused once the models are
known and before any detector, text encoder or sampler runs.

The request model (kekong/request.py) checks every rule that needs only the request. What is left
needs a file (a learned upscaler's weights), the base model (its native size fills a missing
width/height, and every size derived from it is bounded here; its text encoder; its scheduler
config) — so it waits for the models to load, and runs before the first expensive step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kekong.declaration import spec
from kekong.errors import ParameterError
from kekong.request import GenerationRequest
from kekong.sizes import MAX_SIDE, check_batch, check_side


def check_files(request: GenerationRequest) -> None:
    """What the request names on disk beyond models (the server runs this before queueing)."""
    if request.enable_hr:
        from kekong.generation.hires import check_upscaler

        check_upscaler(request.hr_upscaler)


def check_sizes(request: GenerationRequest, max_side: int = MAX_SIDE, max_batch: int | None = None) -> None:
    """Every working size the request derives, per side and as batch × pixels. Sizes the request
    left to the model (width/height None) are skipped; `check_compatible` passes them resolved."""
    for name in ("width", "height", "hr_resize_x", "hr_resize_y", "seed_resize_from_w", "seed_resize_from_h"):
        check_side(name, getattr(request, name) or 0, max_side)
    if request.width is None or request.height is None:
        return
    max_batch = max_batch or int(spec("batch_size").le)
    check_batch(request.batch_size, request.height, request.width, max_side, max_batch)
    if request.enable_hr:
        from kekong.generation.hires import target_size

        height, width = target_size(request, max_side)
        check_batch(request.batch_size, height, width, max_side, max_batch, what=" (the hires pass)")


def check_compatible(request: GenerationRequest, base: Any, units: Sequence[Any] = ()) -> None:
    """Refuse what does not fit `base` (the request has width/height resolved to its native size).
    `units` are the loaded control units; their own fit (family, Union type, IP-Adapter width) is
    checked as each one loads (generation/control.py)."""
    check_files(request)
    check_sizes(request)
    if request.clip_skip != 1 and not base.uses_clip:
        raise ParameterError(f"clip_skip: clip skip applies to CLIP text encoders; {base.name} uses "
                             f"{type(base.text_encoders[0]).__name__}")
    _check_schedulers(request, base)


def _check_schedulers(request: GenerationRequest, base: Any) -> None:
    """Each pass's sampler takes its schedule type with this model's scheduler config (cheap to build)."""
    from kekong.generation.samplers import make_scheduler

    config = dict(base.scheduler_config)
    if request.prediction_type is not None:
        config["prediction_type"] = request.prediction_type.value
    passes = [request]
    if request.enable_hr:
        from kekong.generation.hires import second_pass

        passes.append(second_pass(request))
    for each in passes:
        make_scheduler(each.sampler, each.scheduler, config)

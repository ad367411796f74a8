"""A ready map (detector `none`) of the wrong polarity: dark lines on a light background where the
unit's model reads light lines on black (every line-type ControlNet: canny, lineart, scribble, soft
edge, M-LSD, kekong-shapes-outline). Such a map is accepted and gives a blob; this names the fix."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

log = logging.getLogger(__name__)

# Model names of line-type ControlNets/adapters, all trained on light lines over black.
LINE_MODELS = ("canny", "lineart", "scribble", "softedge", "hed", "pidi", "mlsd", "outline", "sketch")
SCRIBBLE_MODELS = ("scribble", "sketch", "outline")  # where a hand-drawn sketch is the usual input
_LINE_GAP = 64  # a line pixel differs from the background (the median) by at least this much
_MIN_LINES = 0.001  # below this share of line pixels there are no lines to judge


def reads_light_lines(model_name: str) -> bool:
    """Whether a model of this name reads light lines on black."""
    lowered = model_name.lower()
    return any(part in lowered for part in LINE_MODELS)


def dark_lines_on_light(image: np.ndarray) -> bool:
    """Whether a map's lines are darker than its background: the background is the median (a line
    map is mostly background), the lines the pixels far from it."""
    grey = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    background = float(np.median(grey))
    lines = np.abs(grey - background) >= _LINE_GAP
    if lines.mean() < _MIN_LINES:
        return False
    return background > 127 and float(grey[lines].mean()) < background


def polarity_warning(image: np.ndarray, model_name: str, index: int) -> str | None:
    """The warning for a ready map whose polarity is the inverse of what `model_name` reads, else None."""
    if not reads_light_lines(model_name) or not dark_lines_on_light(image):
        return None
    fix = "`scribble_sketch` (a sketch on white paper) or `invert`" if any(
        part in model_name.lower() for part in SCRIBBLE_MODELS) else "`invert`"
    return (f"control unit {index}: the map has dark lines on a light background, but {model_name} reads light "
            f"lines on black, so it will follow little of it; use the detector {fix} instead of `none`")


def warn_if_inverted(image: np.ndarray, model_name: str, index: int) -> str | None:
    """Log (and return) the polarity warning for a ready map."""
    message = polarity_warning(image, model_name, index)
    if message:
        log.warning(message)
    return message


class _Collect(logging.Handler):
    def __init__(self, thread: int) -> None:
        super().__init__(logging.WARNING)
        self.thread, self.messages = thread, []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """The polarity warnings this thread logs inside the block (for an API answer's warnings)."""
    handler = _Collect(threading.get_ident())
    log.addHandler(handler)
    try:
        yield handler.messages
    finally:
        log.removeHandler(handler)
